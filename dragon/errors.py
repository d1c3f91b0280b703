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


class InternalError(TaskError):
    """A bug or an unexpected failure; details go to the log, not to the client."""


def status_error(exc: BaseException) -> str | dict[str, Any]:
    """The value of a status's ``error`` key for an exception raised while running a task."""
    if isinstance(exc, InvalidParametersError):
        return exc.as_status_error()
    if isinstance(exc, TaskError):
        return str(exc)
    return str(InternalError(f"the task failed unexpectedly ({type(exc).__name__})"))


class AccountLimitError(Exception):
    """Creating these tasks would exceed the account's queued-task limit (HTTP 401)."""


class RequestError(Exception):
    """A request the API refuses as a whole (HTTP 400, or 401 for credentials)."""

    def __init__(self, name: str, description: str, location: str = "body", http_status: int = 400):
        super().__init__(description)
        self.name = name
        self.description = description
        self.location = location
        self.http_status = http_status

    def __reduce__(self) -> tuple:  # survives pickling between Ray processes
        return (type(self), (self.name, self.description, self.location, self.http_status))
