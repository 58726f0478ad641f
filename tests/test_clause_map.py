"""Every promise in `llmgine.database.store` has a suite test: the clause map is complete and true.

Hermetic: reads source files only.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import llmgine.database.store as store_module
import llmgine_conformance
from llmgine_conformance.clauses import CLAUSES, NOT_PROMISES

SUITE = Path(llmgine_conformance.__file__).parent


def docstrings(node: ast.AST) -> list[str]:
    """The docstrings of ``node``, its classes and functions, and its attributes."""
    found = []
    doc = (
        ast.get_docstring(node)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef)
        else None
    )
    if doc:
        found.append(doc)
    body = getattr(node, "body", [])
    for before, statement in zip([None, *body], body, strict=False):
        if isinstance(statement, ast.ClassDef | ast.FunctionDef):
            found.extend(docstrings(statement))
        elif (
            isinstance(before, ast.AnnAssign)
            and isinstance(statement, ast.Expr)
            and isinstance(statement.value, ast.Constant)
            and isinstance(statement.value.value, str)
        ):
            found.append(statement.value.value)
    return found


def sentences() -> list[str]:
    tree = ast.parse(Path(store_module.__file__).read_text(encoding="utf-8"))
    return [
        sentence
        for doc in docstrings(tree)
        for sentence in re.split(r"(?<=[.!?])\s+(?=[A-Z`])", " ".join(doc.split()))
    ]


def test_every_sentence_of_the_contract_is_mapped_or_said_to_promise_nothing() -> None:
    unmapped = [s for s in sentences() if s not in CLAUSES and s not in NOT_PROMISES]
    assert unmapped == [], "add these to llmgine_conformance.clauses with their tests"


def test_no_mapped_sentence_is_stale() -> None:
    current = set(sentences())
    assert [s for s in [*CLAUSES, *NOT_PROMISES] if s not in current] == []


def test_every_promise_names_tests_that_exist() -> None:
    for clause, tests in CLAUSES.items():
        assert tests, clause
        for test in tests:
            module, name = test.split("::")
            source = (SUITE / f"{module}.py").read_text(encoding="utf-8")
            assert re.search(rf"^(async )?def {name}\(", source, re.M), f"{test} ({clause})"
