"""The pytest plugin: choose backends, hand each test a `Backend`, skip by capability, report.

Opt in with ``-p llmgine_conformance.plugin`` (installing llmgine changes
nobody's test runs). Then:

    pytest -p llmgine_conformance.plugin --pyargs llmgine_conformance --llmgine-url URL
    pytest -p llmgine_conformance.plugin --pyargs llmgine_conformance --llmgine-store mod:factory
    pytest -p llmgine_conformance.plugin --pyargs llmgine_conformance --llmgine-backend all

or the same through the ``llmgine-conformance`` command. A test asks for the
``backend`` fixture and declares what it needs with
``@pytest.mark.requires(capability, ...)``; each test module names the
capability it proves in ``CAPABILITY``. The run ends with a table of
capability by backend.
"""

from __future__ import annotations

import importlib
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from llmgine.database import reset_engine
from llmgine.redaction import redact
from llmgine_conformance.backends import (
    ALL_CAPABILITIES,
    Backend,
    MemoryBackend,
    faulty,
    postgres_backend,
    postgres_required,
    postgres_url_from_environment,
    redacted,
    sqlite_backend,
    url_backend,
)
from llmgine_conformance.postgres import PostgresServer, find_postgres

BUILT_IN = ("memory", "sqlite", "postgres", "faulty-sqlite", "faulty-postgres")
DEFAULT_TIMEOUT_S = 300.0
"""Per suite test: far above the slowest test's own waits (a crash takeover waits 90 s)."""
ALIASES = {"all": BUILT_IN, "faulty": ("faulty-sqlite", "faulty-postgres")}


@dataclass(frozen=True)
class BackendSpec:
    """A named way to make a fresh `Backend` for one test."""

    name: str
    make: Callable[[pytest.FixtureRequest, Path], Backend] = field(compare=False)

    def __repr__(self) -> str:
        return self.name


# --- options and selection ---------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("llmgine", "llmgine conformance suite")
    group.addoption(
        "--llmgine-backend",
        action="append",
        default=[],
        metavar="NAME",
        help=f"a built-in backend ({', '.join(BUILT_IN)}, faulty, all); repeatable",
    )
    group.addoption(
        "--llmgine-url",
        action="append",
        default=[],
        metavar="URL",
        help="a database URL, tested through the reference store; repeatable",
    )
    group.addoption(
        "--llmgine-store",
        action="append",
        default=[],
        metavar="MODULE:FACTORY",
        help="a factory(tmp_path) returning a llmgine_conformance.Backend; repeatable",
    )
    group.addoption(
        "--llmgine-timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        metavar="SECONDS",
        help=f"fail a suite test still running after this long, setup and teardown included "
        f"(default {DEFAULT_TIMEOUT_S:g}; 0: never)",
    )
    group.addoption(
        "--llmgine-postgres-url",
        default=None,
        metavar="URL",
        help="the PostgreSQL server for the postgres backends (default: LLMGINE_TEST_POSTGRES_URL, "
        "then testcontainers)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "requires(*capabilities): skip unless the backend declares every capability "
        f"({', '.join(sorted(ALL_CAPABILITIES))})",
    )
    config.stash[_SPECS] = selected_specs(config)
    config.pluginmanager.register(Reporter(), f"llmgine-conformance-reporter-{id(config)}")


def selected_specs(config: pytest.Config) -> list[BackendSpec]:
    """The backends the options ask for; every built-in one when none is named."""
    names: list[str] = []
    for value in config.getoption("--llmgine-backend"):
        for name in (part.strip() for part in value.split(",")):
            names.extend(ALIASES.get(name, (name,)))
    specs = [_built_in(name) for name in dict.fromkeys(names)]
    specs += [_url_spec(url) for url in config.getoption("--llmgine-url")]
    specs += [_store_spec(target) for target in config.getoption("--llmgine-store")]
    return specs or [_built_in(name) for name in BUILT_IN]


def _built_in(name: str) -> BackendSpec:
    makers: dict[str, Callable[[pytest.FixtureRequest, Path], Backend]] = {
        "memory": lambda _request, _tmp: MemoryBackend(),
        "sqlite": lambda _request, tmp: sqlite_backend(tmp),
        "postgres": lambda request, _tmp: postgres_backend(_postgres_url(request)),
        "faulty-sqlite": lambda _request, tmp: faulty(sqlite_backend(tmp)),
        "faulty-postgres": lambda request, _tmp: faulty(postgres_backend(_postgres_url(request))),
    }
    if name not in makers:
        raise pytest.UsageError(
            f"unknown llmgine backend {name!r}; choose from {', '.join(BUILT_IN)}, faulty, all"
        )
    return BackendSpec(name, makers[name])


def _url_spec(url: str) -> BackendSpec:
    return BackendSpec(f"url:{redacted(url)}", lambda _request, _tmp: url_backend(url))


def _store_spec(target: str) -> BackendSpec:
    factory = load_factory(target)

    def make(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
        made: object = factory(tmp_path)  # a third party's: not necessarily what it says
        if not isinstance(made, Backend):
            close = getattr(made, "close", None)
            if callable(close):
                close()
            problem = (
                f"--llmgine-store {target}: the factory returned a {type(made).__name__}, not a "
                "llmgine_conformance.backends.Backend; return one that opens your store, e.g. "
                "StoreFactoryBackend(lambda clock: MyStore(..., clock=clock), name='mine')"
            )
            request.session.shouldstop = problem  # every other test would fail the same way
            pytest.fail(problem, pytrace=False)
        return made

    return BackendSpec(f"store:{target}", make)


def load_factory(target: str) -> Callable[[Path], Backend]:
    """The ``factory`` named by ``module:factory``; raises `pytest.UsageError` if there is none."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise pytest.UsageError(f"--llmgine-store wants module:factory, not {target!r}")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise pytest.UsageError(f"cannot load backend factory {target!r}: {exc}") from exc
    if not callable(factory):
        raise pytest.UsageError(f"{target!r} is not callable")
    return factory  # type: ignore[no-any-return]


def _postgres_url(request: pytest.FixtureRequest) -> str:
    return require_postgres_url(request.getfixturevalue("llmgine_postgres"))


def require_postgres_url(server: PostgresServer) -> str:
    """The server's URL; skips without one, or fails if LLMGINE_REQUIRE_POSTGRES=1."""
    if server.url is None:
        if postgres_required():
            pytest.fail(f"{server.source} (LLMGINE_REQUIRE_POSTGRES=1 forbids skipping)")
        pytest.skip(server.source)
    return server.url


# --- the per-test timeout ---------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """Bound every suite test (setup, call, teardown): a store that hangs or loops fails its
    test after ``--llmgine-timeout`` seconds instead of stopping the run."""
    limit = float(item.config.getoption("--llmgine-timeout"))
    suite_test = "llmgine_backend_spec" in getattr(item, "fixturenames", ())
    if not suite_test or limit <= 0 or not _can_alarm():
        return (yield)

    def expire(_signum: int, _frame: object) -> None:
        pytest.fail(
            f"timed out after {limit:g} s (--llmgine-timeout): the store, or a thread of the "
            "test, did not return",
            pytrace=True,
        )

    previous = signal.signal(signal.SIGALRM, expire)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, limit)  # a run nested in a test (pytester)
    started = time.monotonic()
    try:
        return (yield)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer > 0:  # give the enclosing run its own alarm back
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - started), 1e-3))


def _can_alarm() -> bool:
    """SIGALRM exists (not on Windows) and this is the main thread, where handlers run."""
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def llmgine_postgres(pytestconfig: pytest.Config) -> Iterator[PostgresServer]:
    """The PostgreSQL server of this session (see `llmgine_conformance.postgres`)."""
    explicit = pytestconfig.getoption("--llmgine-postgres-url") or postgres_url_from_environment()
    server = find_postgres(explicit)
    yield server
    server.stop()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "llmgine_backend_spec" in metafunc.fixturenames:
        specs = metafunc.config.stash[_SPECS]
        metafunc.parametrize("llmgine_backend_spec", specs, ids=[s.name for s in specs])


@pytest.fixture
def backend(
    request: pytest.FixtureRequest, tmp_path: Path, llmgine_backend_spec: BackendSpec
) -> Iterator[Backend]:
    """A fresh backend of the selected kind; skips if it lacks a required capability."""
    made = llmgine_backend_spec.make(request, tmp_path)
    missing = sorted(required_capabilities(request.node) - made.capabilities)
    if missing:
        made.close()
        pytest.skip(f"{made.name} does not declare {', '.join(missing)}")
    yield made
    leaked = made.leaked_connections()
    made.close()
    if leaked:
        pytest.fail(f"{made.name}: {leaked} pooled connections still checked out at teardown")


@pytest.fixture
def store(backend: Backend) -> Any:
    """A store opened on ``backend``."""
    return backend.open()


@pytest.fixture
def seed_environment(backend: Backend, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    """Point the environment-driven seed API at ``backend`` (requires ENVIRONMENT)."""
    for name, value in backend.environment().items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("LLMGINE_PERSIST_EVENTS", raising=False)
    reset_engine()
    yield backend
    reset_engine()


def required_capabilities(item: pytest.Item) -> set[str]:
    """Every capability named by the item's ``requires`` markers."""
    needed: set[str] = set()
    for marker in item.iter_markers("requires"):
        unknown = set(marker.args) - ALL_CAPABILITIES
        if unknown:
            raise pytest.UsageError(f"{item.nodeid}: unknown capabilities {sorted(unknown)}")
        needed.update(marker.args)
    return needed


# --- the report ----------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport() -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """Every test report with passwords hidden: a failure's traceback shows the arguments of
    driver frames (a connection string, ``password=`` keywords) and captured log lines."""
    report = yield
    hide_passwords(report)
    return report


def hide_passwords(report: pytest.TestReport) -> None:
    """Rewrite ``report``'s failure text and captured sections through `redact`."""
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):
        path, line, message = longrepr
        report.longrepr = (path, line, redact(message))
    elif longrepr is not None:
        text = str(longrepr)
        if redact(text) != text:  # keep pytest's own (coloured) rendering when nothing leaks
            report.longrepr = redact(text)
    report.sections = [(title, redact(content)) for title, content in report.sections]


@dataclass
class _Tally:
    passed: int = 0
    failed: int = 0
    skipped: int = 0
    reasons: set[str] = field(default_factory=set)

    def cell(self) -> str:
        parts = [f"{n} {word}" for n, word in ((self.passed, "passed"), (self.failed, "failed"),
                                               (self.skipped, "skipped")) if n]  # fmt: skip
        return ", ".join(parts) or "-"


_SPECS = pytest.StashKey[list[BackendSpec]]()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        required_capabilities(item)  # an unknown capability is a usage error, before anything runs
        callspec = getattr(item, "callspec", None)
        if callspec is None or "llmgine_backend_spec" not in callspec.params:
            continue
        module = getattr(item, "module", None)
        capability = getattr(module, "CAPABILITY", None) or getattr(module, "__name__", "?")
        backend_name = callspec.params["llmgine_backend_spec"].name
        item.user_properties.append(("llmgine_backend", backend_name))
        item.user_properties.append(("llmgine_capability", capability))


_RANK = {"passed": 0, "skipped": 1, "failed": 2}


class Reporter:
    """Tallies tests by (capability, backend) and prints the table at the end.

    A test counts once, by its worst phase: a test that failed and then erred in teardown
    is one failed test; a setup or teardown that passed says nothing."""

    def __init__(self) -> None:
        self.tests: dict[tuple[str, str], dict[str, tuple[str, str]]] = defaultdict(dict)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        properties = dict(report.user_properties)
        if "llmgine_backend" not in properties or (report.passed and report.when != "call"):
            return
        key = (str(properties["llmgine_capability"]), str(properties["llmgine_backend"]))
        outcome = "failed" if report.failed else "skipped" if report.skipped else "passed"
        reason = _skip_reason(report) if report.skipped else ""
        seen = self.tests[key].get(report.nodeid)
        if seen is None or _RANK[outcome] > _RANK[seen[0]]:
            self.tests[key][report.nodeid] = (outcome, reason)

    @property
    def results(self) -> dict[tuple[str, str], _Tally]:
        """The tally of each (capability, backend)."""
        tallies: dict[tuple[str, str], _Tally] = {}
        for key, tests in self.tests.items():
            tally = tallies[key] = _Tally()
            for outcome, reason in tests.values():
                setattr(tally, outcome, getattr(tally, outcome) + 1)
                if reason:
                    tally.reasons.add(reason)
        return tallies

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """After pytest's own summary line, so the run ends with the table and the verdict."""
        terminal = config.pluginmanager.get_plugin("terminalreporter")
        results = self.results
        if results and terminal is not None:
            for line in [*format_table(results), "", *verdicts(results)]:
                terminal.write_line(line)


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def format_table(results: dict[tuple[str, str], _Tally]) -> list[str]:
    """The capability-by-backend table, then the skip reasons."""
    capabilities = sorted({capability for capability, _ in results})
    backends = sorted({backend for _, backend in results}, key=_backend_order)
    header = ["llmgine conformance", *backends]
    rows = [[c, *(results[(c, b)].cell() if (c, b) in results else "-" for b in backends)]
            for c in capabilities]  # fmt: skip
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = ["", "  ".join(text.ljust(width) for text, width in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * width for width in widths))
    lines += ["  ".join(text.ljust(width) for text, width in zip(row, widths, strict=True))
              for row in rows]  # fmt: skip
    return lines + skip_reasons(results, backends)


def skip_reasons(results: dict[tuple[str, str], _Tally], backends: list[str]) -> list[str]:
    """Each backend's skip reasons, each said once, with the capabilities it skipped."""
    lines = []
    for backend in backends:
        by_reason: dict[str, set[str]] = defaultdict(set)
        for (capability, name), tally in results.items():
            if name == backend:
                for reason in tally.reasons:
                    by_reason[reason.removeprefix(f"{backend} ")].add(capability)
        lines += [f"  {backend}: {reason} ({', '.join(sorted(capabilities))})"
                  for reason, capabilities in sorted(by_reason.items())]  # fmt: skip
    return ["skipped because:", *lines] if lines else []


def verdicts(results: dict[tuple[str, str], _Tally]) -> list[str]:
    """One line per backend: how many of the capabilities it declares (runs) it keeps.

    A capability is kept when its tests ran and none failed; not declared when every test
    of it skipped; broken when any failed."""
    backends = sorted({backend for _, backend in results}, key=_backend_order)
    lines = []
    for backend in backends:
        tallies = {c: t for (c, b), t in results.items() if b == backend}
        undeclared = [c for c, t in tallies.items() if not t.passed and not t.failed]
        broken = sorted(c for c, t in tallies.items() if t.failed)
        declared = len(tallies) - len(undeclared)
        subject = "this backend" if len(backends) == 1 else backend
        line = (f"{subject} keeps {declared - len(broken)} of {declared} promises; "
                f"{len(undeclared)} not declared")  # fmt: skip
        if broken:
            line += f"; broken: {', '.join(broken)}"
        lines.append(line)
    return lines


def _backend_order(name: str) -> tuple[int, str]:
    return (BUILT_IN.index(name), name) if name in BUILT_IN else (len(BUILT_IN), name)
