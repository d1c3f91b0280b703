"""Where output files live: one interface, a local-disk and an S3 implementation.

Objects are named ``<area>/<account>/<path>`` where area is ``persistent`` or
``volatile`` and path is ``<TASK_KEY>/dragon-<task_name>-<6 chars>.<ext>``; see
:mod:`dragon.storage.paths`. Only storage actors write through a backend.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Iterator

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
    def delete(self, names: list[str]) -> None: ...

    @abstractmethod
    def url(self, name: str) -> str:
        """An absolute URL a client can download the object from."""

    @abstractmethod
    def name_of(self, url: str) -> str | None:
        """The object name behind one of our own URLs, else None."""


def open_backend(settings: Settings) -> Backend:
    if settings.storage_backend == "s3":
        from dragon.storage.s3 import S3Backend

        return S3Backend(settings)
    from dragon.storage.local import LocalBackend

    return LocalBackend(settings.files_dir, settings.base_url)
