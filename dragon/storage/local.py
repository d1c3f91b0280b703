"""The embedded default: files in the data directory, served by the API itself."""

from __future__ import annotations

import builtins
import os
import secrets
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from dragon.storage import Backend, Entry, check_parts

CHUNK = 1024 * 1024


class LocalBackend(Backend):
    def __init__(self, root: Path, base_url: str):
        self.root = root.absolute()
        self.base_url = base_url.rstrip("/")
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        """The file of an object name; refuses names that would leave the root."""
        target = (self.root / name).resolve()
        if not target.is_relative_to(self.root.resolve()):
            raise FileNotFoundError(name)
        return target

    def local_path(self, name: str) -> Path | None:
        try:
            target = self.path(name)
        except FileNotFoundError:
            return None
        return target if target.is_file() else None

    def put(self, name: str, source: Path, content_type: str) -> None:
        target = self.path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".part")
        try:
            if source.stat().st_nlink > 1:  # an input stored unchanged: its own file, its own dates
                raise OSError("shared")
            os.link(source, partial)  # same filesystem: no copy at all
        except OSError:
            shutil.copyfile(source, partial)
        os.replace(partial, target)  # readers never see half a file

    def read(self, name: str) -> Iterator[bytes]:
        with open(self.path(name), "rb") as f:
            while chunk := f.read(CHUNK):
                yield chunk

    def list(self, prefix: str) -> list[Entry]:
        base = self.path(prefix) if prefix else self.root
        if not base.is_dir():
            return []
        entries = []
        for dirpath, _, files in os.walk(base):
            for file in files:
                if file.endswith(".part"):
                    continue
                full = Path(dirpath) / file
                try:
                    st = full.stat()
                except FileNotFoundError:  # deleted while the directory was walked
                    continue
                entries.append(
                    Entry(
                        name=full.relative_to(self.root).as_posix(),
                        size=st.st_size,
                        last_modified=datetime.fromtimestamp(st.st_mtime, UTC),
                    )
                )
        return sorted(entries, key=lambda e: e.name)

    def delete(self, names: builtins.list[str]) -> None:
        for name in names:
            target = self.path(name)
            target.unlink(missing_ok=True)
            parent = target.parent
            while parent != self.root and parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()
                parent = parent.parent

    def start_upload(self, name: str, content_type: str) -> str:
        upload = secrets.token_hex(16)
        self._parts(upload).mkdir(parents=True)
        return upload

    def put_part(self, name: str, upload: str, number: int, source: Path) -> None:
        parts = self._parts(upload)
        if not parts.is_dir():
            raise FileNotFoundError(upload)
        shutil.copyfile(source, parts / f"{number:05d}.part")

    def finish_upload(self, name: str, upload: str, part_bytes: int) -> int:
        parts = self._parts(upload)
        if not parts.is_dir():
            raise FileNotFoundError(upload)
        files = sorted(parts.glob("*.part"))
        check_parts([(int(f.stem), f.stat().st_size) for f in files], part_bytes)
        joined = parts / "joined"
        with open(joined, "wb") as out:
            for part in files:
                with open(part, "rb") as f:
                    shutil.copyfileobj(f, out, CHUNK)
        size = joined.stat().st_size
        self.put(name, joined, "")
        shutil.rmtree(parts, ignore_errors=True)
        return size

    def abort_upload(self, name: str, upload: str) -> None:
        shutil.rmtree(self._parts(upload), ignore_errors=True)

    def _parts(self, upload: str) -> Path:
        """Where an upload's parts wait: beside the areas, never inside one (listings skip it)."""
        if len(upload) != 32 or any(c not in "0123456789abcdef" for c in upload):
            raise FileNotFoundError(upload)
        return self.root / ".uploads" / upload

    def url(self, name: str) -> str:
        return f"{self.base_url}/storage/{name}"

    def name_of(self, url: str) -> str | None:
        prefix = f"{self.base_url}/storage/"
        return url[len(prefix) :].split("?")[0] if url.startswith(prefix) else None
