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
