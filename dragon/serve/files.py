"""Answers for output files that storage expiry or a client's delete may remove at any moment.

Starlette's FileResponse stats a path, sends the headers and only then opens the file: a
file unlinked in between cuts the answer after its Content-Length, which clients read as
a broken connection. Opening first closes that gap, since an open file outlives its name:
the client gets the whole file, or a 404 when the name was gone before the request.
"""

import os
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import BinaryIO

import anyio
from starlette.responses import FileResponse
from starlette.types import Receive, Scope, Send


class OpenFileResponse(FileResponse):
    """A FileResponse over a file already open; Range, HEAD and validators stay Starlette's."""

    def __init__(self, file: BinaryIO, media_type: str) -> None:
        self._file = file
        super().__init__(file.name, media_type=media_type, stat_result=os.fstat(file.fileno()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # "pathsend" would hand the server the name, which may be gone by then
        extensions = {k: v for k, v in scope.get("extensions", {}).items() if k != "http.response.pathsend"}
        try:
            await super().__call__({**scope, "extensions": extensions}, receive, send)
        finally:
            self._file.close()

    @asynccontextmanager
    async def _open_file(self) -> AsyncIterator[anyio.AsyncFile[bytes]]:
        self._file.seek(0)
        yield anyio.AsyncFile(self._file)


def open_regular_file(path: Path) -> BinaryIO | None:
    """The file at ``path`` opened for reading, or None when it is missing or not a regular file."""
    try:
        file = path.open("rb")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
        file.close()
        return None
    return file
