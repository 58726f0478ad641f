"""The errors llmgine raises: one root, a few leaves.

Each leaf also inherits the built-in exception it is a kind of, so callers can
catch either. The docstring is the default message.
"""

from __future__ import annotations

from llmgine.redaction import redact


class LlmgineError(Exception):
    """An llmgine error. Its message never shows a password (`llmgine.redaction`)."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(redact(message) if message else (self.__doc__ or "").strip())


class RegistrationError(LlmgineError, ValueError):
    """Two different event classes were registered under one name."""


class UnstorableEventError(LlmgineError, TypeError):
    """The event holds a value that cannot be stored and restored faithfully."""


class LlmginePersistenceError(LlmgineError):
    """A persistence error."""


class ConfigurationError(LlmginePersistenceError, ValueError):
    """The database configuration is invalid."""


class SchemaVersionError(LlmginePersistenceError, RuntimeError):
    """The database schema was written by a newer llmgine than this one."""


class StoreUnavailableError(LlmginePersistenceError, ConnectionError):
    """The database could not complete the operation; it may succeed if retried."""


class DecodeError(LlmginePersistenceError, ValueError):
    """A stored row cannot be turned back into an event."""


class RejectedDataError(LlmginePersistenceError, ValueError):
    """The database refused this data; retrying the same data will not help."""


DATA_ERRORS: tuple[type[BaseException], ...] = (
    ValueError,
    TypeError,
    OverflowError,
    RecursionError,
)
"""What Python raises for a value it cannot convert (an int past the int-to-str digit limit,
a lone surrogate, a value too large for a column type, a container that holds itself):
retrying the same data raises the same error again."""


def refusal(exc: BaseException) -> LlmgineError | None:
    """The refusal ``exc`` amounts to if it was raised for the data; None for a fault.

    The one place that tells data errors from database faults. `StoreUnavailableError`
    is a fault; `RejectedDataError` and `UnstorableEventError` are refusals; any other
    error that `DATA_ERRORS` lists (raised by an encoder or a driver converting a value)
    is a refusal too, as an `UnstorableEventError`. Anything else (a driver's own error
    class, an unknown exception) is a fault, to be retried.
    """
    if isinstance(exc, StoreUnavailableError):
        return None
    if isinstance(exc, RejectedDataError | UnstorableEventError):
        return exc
    if isinstance(exc, DATA_ERRORS):
        return UnstorableEventError(f"cannot store the value: {type(exc).__name__}: {_text(exc)}")
    return None


def _text(exc: BaseException) -> str:
    try:
        return str(exc)[:500]
    except Exception:
        return "<unprintable error>"
