"""Passwords never reach a log line, an exception message or a failure report."""

from __future__ import annotations

import logging
import textwrap

import pytest
from sqlalchemy.engine import make_url

from llmgine.database._faultlog import FaultLog
from llmgine.database.connect import create_engine_for
from llmgine.errors import ConfigurationError, StoreUnavailableError
from llmgine.redaction import redact

pytest_plugins = ["pytester"]

SECRET = "hunter2"


@pytest.mark.parametrize(
    "text",
    [
        f"postgresql://user:{SECRET}@host/db",
        f"postgresql://user:{SECRET}@with@at/and/slash@host:5432/db",  # parses wrongly or not
        f"postgresql://user:{SECRET}@host:notaport/db",  # make_url refuses it
        f"postgresql://user@host/db?sslmode=require&password={SECRET}",
        f"postgresql://user@host/db?PASSWORD={SECRET}",
        f"not a url://user:{SECRET}@host",
        f"connection failed: host=127.0.0.1 user=u password={SECRET} dbname=db",
        f"conninfo = 'host=h password=\\'{SECRET} x\\' dbname=db'",
        f"kwargs = {{'host': 'h', 'password': '{SECRET}', 'dbname': 'db'}}",
        f"password = '{SECRET}'",
    ],
)
def test_redact_hides_the_password(text: str) -> None:
    assert SECRET not in redact(text)
    assert "***" in redact(text)


def test_redact_keeps_what_is_not_secret() -> None:
    shown = redact(f"postgresql://user:{SECRET}@db.example:5433/app?sslmode=require")
    assert shown == "postgresql://user:***@db.example:5433/app?sslmode=require"
    assert redact("sqlite:///./message_bus.db") == "sqlite:///./message_bus.db"
    assert redact("postgresql://user@host:5432/db") == "postgresql://user@host:5432/db"


def test_redact_accepts_a_sqlalchemy_url() -> None:
    url = make_url(f"postgresql://u:{SECRET}@h/db?password={SECRET}")
    assert SECRET not in redact(url)


def test_llmgine_error_messages_hide_passwords() -> None:
    error = StoreUnavailableError(f"cannot reach postgresql://u@h/db?password={SECRET}")
    assert SECRET not in str(error)


def test_an_unknown_driver_error_hides_a_query_password() -> None:
    with pytest.raises(ConfigurationError) as caught:
        create_engine_for(make_url(f"nosuchdriver://u@h/db?password={SECRET}"))
    assert SECRET not in str(caught.value)


def test_fault_log_lines_hide_passwords(caplog: pytest.LogCaptureFixture) -> None:
    faults = FaultLog(logging.getLogger("llmgine.test"))
    with caplog.at_level(logging.WARNING, logger="llmgine.test"):
        faults.report("x", "failed: %s", RuntimeError(f"password={SECRET} refused"))
    assert "failed: password=*** refused" in caplog.text
    assert SECRET not in caplog.text


def test_failure_reports_hide_driver_frame_arguments(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        textwrap.dedent(
            f"""
            import logging

            def connect(conninfo, **kwargs):
                raise ConnectionError("refused")

            def test_connects():
                logging.getLogger("driver").warning("dsn host=h password={SECRET}")
                connect("host=h password={SECRET}", password="{SECRET}")
            """
        )
    )
    result = pytester.runpytest_subprocess("-p", "llmgine_conformance.plugin", "--tb=long", "-l")
    result.assert_outcomes(failed=1)
    output = result.stdout.str()
    assert "ConnectionError: refused" in output
    assert "password=***" in output
    assert SECRET not in output
