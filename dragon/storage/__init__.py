"""Where output files live: one interface, a local-disk and an S3 implementation.

Objects are named ``<area>/<account>/<path>`` where area is ``persistent`` or
``volatile`` and path is ``<TASK_KEY>/dragon-<task_name>-<6 chars>.<ext>``; see
:mod:`dragon.storage.paths`. Only storage actors write through a backend.
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from dragon.config import Settings


@dataclass(frozen=True)
class Entry:
    name: str
    size: int
    last_modified: datetime  # timezone-aware, UTC


class Backend(ABC):
    @abstractmethod
    def put(self, name: str, source: Path, content_type: str) -> None:
        """Store the file at ``source`` under ``name``."""

    @abstractmethod
    def read(self, name: str) -> Iterator[bytes]:
        """The object's bytes, in chunks; FileNotFoundError if absent."""

    @abstractmethod
    def list(self, prefix: str) -> list[Entry]:
        """Every object whose name starts with ``prefix`` (a directory, ending in '/')."""

    @abstractmethod
    def delete(self, names: builtins.list[str]) -> None: ...

    @abstractmethod
    def url(self, name: str) -> str:
        """An absolute URL a client can download the object from."""

    # uploads in parts (a client's large file, a part per request)

    @abstractmethod
    def start_upload(self, name: str, content_type: str) -> str:
        """Begin an object put in numbered parts; returns the upload's id."""

    @abstractmethod
    def put_part(self, name: str, upload: str, number: int, source: Path) -> None:
        """Store part ``number`` (1, 2...) from a file; putting a part again replaces it."""

    @abstractmethod
    def finish_upload(self, name: str, upload: str, part_bytes: int) -> int:
        """Join the parts, in order, into the object; returns its size. ValueError unless
        the parts are numbered 1 to n and all but the last are ``part_bytes`` long."""

    @abstractmethod
    def abort_upload(self, name: str, upload: str) -> None: ...

    @abstractmethod
    def name_of(self, url: str) -> str | None:
        """The object name behind one of our own URLs, else None."""

    def local_path(self, name: str) -> Path | None:
        """The object as a file on this machine, to be read in place; None where the
        backend keeps it elsewhere."""
        return None


def check_parts(sizes: list[tuple[int, int]], part_bytes: int) -> None:
    """(number, size) of an upload's parts, in order: 1 to n, all but the last full."""
    if not sizes:
        raise ValueError("the upload has no part")
    if [number for number, _ in sizes] != list(range(1, len(sizes) + 1)):
        raise ValueError("the parts must be numbered 1, 2, 3... with none missing")
    if any(size != part_bytes for _, size in sizes[:-1]):
        raise ValueError(f"every part but the last must be {part_bytes} bytes long")


def open_backend(settings: Settings) -> Backend:
    if settings.storage_backend == "s3":
        from dragon.storage.s3 import S3Backend

        return S3Backend(settings)
    from dragon.storage.local import LocalBackend

    return LocalBackend(settings.files_dir, settings.base_url)
