"""Names of stored objects, and confinement of client-supplied paths.

A client path is relative to its account's persistent area. It is decoded once,
normalised, and refused if it could point anywhere else: no absolute paths, no '..',
no backslashes or control characters, nothing encoded to look harmless.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import string
from urllib.parse import unquote

from dragon.errors import InvalidRequestError

PERSISTENT = "persistent"
VOLATILE = "volatile"
AREAS = (PERSISTENT, VOLATILE)
ACCOUNT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SUFFIX = string.ascii_letters + string.digits


def output_name(area: str, account: str, key: str, task_name: str, extension: str) -> str:
    """``<area>/<account>/<KEY>/dragon-<task_name>-<6 random chars><.ext>``, as the spec's listing."""
    suffix = "".join(secrets.choice(_SUFFIX) for _ in range(6))
    extension = "".join(c for c in extension if c.isascii() and c.isalnum())[:16]  # never a path
    ext = f".{extension}" if extension else ""
    return f"{area}/{account}/{key}/dragon-{task_name}-{suffix}{ext}"


def account_root(account: str, area: str = PERSISTENT) -> str:
    return f"{area}/{account}/"


def client_path(path: str) -> str:
    """A client path made safe: '' for the root, 'KEY/' style for directories kept as given."""
    decoded = unquote(path or "")
    if "%" in decoded and unquote(decoded) != decoded:
        raise InvalidRequestError("path", "the path is encoded more than once")
    if any(ord(c) < 32 or c == "\\" for c in decoded):
        raise InvalidRequestError("path", "the path has forbidden characters")
    if decoded.startswith("/") and decoded.strip("/"):
        raise InvalidRequestError("path", "the path must be relative to your storage")
    parts = [p for p in decoded.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise InvalidRequestError("path", "the path must not contain '..'")
    return "/".join(parts)


_UPLOAD_NAME = re.compile(
    r"^persistent/([A-Za-z0-9][A-Za-z0-9_.-]{0,63})/[A-Z2-7]{26}/dragon-upload-[A-Za-z0-9]{6}(\.[A-Za-z0-9]{1,16})?$"
)


def upload_id(account: str, name: str, upload: str) -> str:
    """The id a client names an upload in parts by: which object, and the backend's id."""
    return base64.urlsafe_b64encode(json.dumps([account, name, upload]).encode()).decode().rstrip("=")


def read_upload_id(value: str, account: str) -> tuple[str, str]:
    """(object name, backend upload id) of an upload of ``account``'s; refuses any id
    that would name another account's object, or anything but an upload's name."""
    try:
        owner, name, upload = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    except (ValueError, TypeError):
        raise UnknownUploadError(value) from None
    match = _UPLOAD_NAME.match(name) if isinstance(name, str) else None
    if owner != account or match is None or match.group(1) != account or not isinstance(upload, str) or not upload:
        raise UnknownUploadError(value)
    return name, upload


class UnknownUploadError(InvalidRequestError):
    """An upload id that names no upload of this account (or one already finished)."""

    def __init__(self, value: str):
        super().__init__("upload", f"there is no upload with this id: {value[:80]}")
        self.value = value

    def __reduce__(self) -> tuple:
        return (type(self), (self.value,))
