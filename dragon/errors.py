"""Errors that end a task, and how they read in a status.

A task error string always starts with the error class name (``InvalidImageError: ...``):
clients of the original service match on that prefix.
"""

from __future__ import annotations

from typing import Any


class TaskError(Exception):
    """Raised by task code for a failure the client should read about."""

    def __str__(self) -> str:
        message = super().__str__()
        return f"{type(self).__name__}: {message}" if message else type(self).__name__


class InvalidParametersError(TaskError):
    """Parameter validation failed; the status carries ``{"parameters": {field: [messages]}}``."""

    def __init__(self, fields: dict[str, list[str]]):
        super().__init__("invalid parameters")
        self.fields = fields

    def __reduce__(self) -> tuple:  # survives pickling between Ray processes
        return (type(self), (self.fields,))

    def as_status_error(self) -> dict[str, Any]:
        return {"parameters": self.fields}


class CouldNotDownloadError(TaskError):
    pass


class InvalidContentError(TaskError):
    pass


class InvalidImageError(TaskError):
    pass


class InvalidXMLError(TaskError):
    """A video definition (SXML) that cannot be read, validated or timed: ``line N: ...``."""


class InvalidFontError(TaskError):
    """A text names a font (or weight, or style) that no installed font provides."""


class TextToSpeechError(TaskError):
    """Speech could not be synthesised on this worker (no engine installed, or it failed)."""


class AuthorizationError(TaskError):
    """A platform refused the credentials (invalid or expired token, bad signature)."""


class QuotaExceededError(TaskError):
    """A platform's quota, rate limit or storage space would be exceeded."""


class UploadRejectedError(TaskError):
    """A platform refused the upload or its metadata."""


class UploadError(TaskError):
    """An upload could not be completed (network failures beyond the resumes allowed)."""


class WorkerCrashedError(TaskError):
    """The worker process or node running the task died on every allowed attempt."""


class CanceledError(TaskError):
    """The task's owner canceled it."""


class DependencyError(TaskError):
    """A task whose input is another task's output: that task ended in error or was canceled."""


class InternalError(TaskError):
    """A bug or an unexpected failure; details go to the log, not to the client."""


def status_error(exc: BaseException) -> str | dict[str, Any]:
    """The value of a status's ``error`` key for an exception raised while running a task."""
    if isinstance(exc, InvalidParametersError):
        return exc.as_status_error()
    if isinstance(exc, TaskError):
        return str(exc)
    return str(InternalError(f"the task failed unexpectedly ({type(exc).__name__})"))


# Refusals of a whole request, raised below the web layer: dragon/serve/errors.py maps
# each to the spec's error body and HTTP status, in one place.


class RefusedError(Exception):
    """The service refuses a request as a whole; ``field`` names what is wrong."""

    def __init__(self, field: str, description: str):
        super().__init__(description)
        self.field = field
        self.description = description

    def __reduce__(self) -> tuple:  # survives pickling between Ray processes
        return (type(self), (self.field, self.description))


class InvalidRequestError(RefusedError):
    """The request is malformed or names something invalid (HTTP 400)."""


class UnknownTaskError(InvalidRequestError):
    """A key names no task (of this account, where the operation is the account's)."""

    def __init__(self, key: str, field: str = "tasks"):
        super().__init__(field, f"there is no task with this ID: {key}")
        self.key = key

    def __reduce__(self) -> tuple:
        return (type(self), (self.key, self.field))


class CredentialsError(RefusedError):
    """Missing or invalid credentials, or a method the credentials do not allow (HTTP 401)."""


class AccountLimitError(RefusedError):
    """Creating these tasks would exceed the account's queued-task limit (HTTP 401)."""

    def __init__(self, field: str = "tasks", description: str = "account limits reached"):
        super().__init__(field, description)


class UnavailableError(RefusedError):
    """A backend the request needs (the journal, storage, a shard) is down (HTTP 503)."""

    def __init__(
        self, field: str = "service", description: str = "the service is temporarily unavailable, retry later"
    ):
        super().__init__(field, description)
