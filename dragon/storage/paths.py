"""Names of stored objects, and confinement of client-supplied paths.

A client path is relative to its account's persistent area. It is decoded once,
normalised, and refused if it could point anywhere else: no absolute paths, no '..',
no backslashes or control characters, nothing encoded to look harmless.
"""

from __future__ import annotations

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
