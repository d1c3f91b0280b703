"""A node's copies of the outputs it stored to a remote store (S3): a pipeline's next
step, run on the same node (dragon/actors/shard.py asks for it), reads its input here
instead of downloading what this node just uploaded.

Objects are never changed once stored (their names are new), so a copy is valid while
it lives: it is a hard link of the file the task handed over (no bytes copied), kept
``node_cache_seconds`` at most, the oldest going first past ``node_cache_bytes``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path


class NodeCache:
    def __init__(self, root: Path, max_bytes: int, max_seconds: float):
        self.root = root
        self.max_bytes = max_bytes
        self.max_seconds = max_seconds

    def path(self, name: str) -> Path | None:
        """The copy of object ``name``, if this node holds a fresh one."""
        copy = self._file(name)
        try:
            if time.time() - copy.stat().st_ctime <= self.max_seconds:
                return copy
        except FileNotFoundError:
            pass
        return None

    def keep(self, name: str, source: Path) -> None:
        """Keep the just-stored ``source`` as the copy of ``name``, then trim the cache."""
        if self.max_bytes <= 0 or source.stat().st_size > self.max_bytes:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        copy = self._file(name)
        partial = copy.with_name(copy.name + ".part")
        try:
            os.link(source, partial)
        except OSError:
            shutil.copyfile(source, partial)
        os.replace(partial, copy)
        self._trim()

    def forget(self, names: list[str]) -> None:
        for name in names:
            self._file(name).unlink(missing_ok=True)

    def _file(self, name: str) -> Path:
        return self.root / hashlib.sha256(name.encode()).hexdigest()

    def _trim(self) -> None:
        entries = []
        for entry in os.scandir(self.root):
            try:
                st = entry.stat()
            except FileNotFoundError:
                continue
            entries.append((st.st_ctime, st.st_size, Path(entry.path)))
        entries.sort()
        total, now = sum(size for _, size, _ in entries), time.time()
        for ctime, size, path in entries:
            if total <= self.max_bytes and now - ctime <= self.max_seconds:
                break
            path.unlink(missing_ok=True)
            total -= size
