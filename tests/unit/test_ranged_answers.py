"""How the ranged reader reads an origin's first answer: a size to read by range, or a
download instead. No server: answers are built by hand."""

from __future__ import annotations

import httpx
import pytest

from dragon.storage.fetch import ranged_size


@pytest.mark.parametrize(
    "status, content_range, size",
    [
        (206, "bytes 0-262143/1073741824", 1073741824),  # ranges served: read by range
        (206, "bytes 0-99/100", 100),  # a file smaller than one block
        (200, "", None),  # ranges ignored: the body is the whole file, so download it
        (206, "bytes 0-262143/*", None),  # no size given: a reader cannot seek from the end
        (206, "", None),  # a 206 that does not say what it holds
        (416, "bytes */0", 0),  # an empty file
        (416, "bytes */5000", None),
    ],
)
def test_the_first_answer_says_whether_to_read_by_range(status: int, content_range: str, size: int | None) -> None:
    headers = {"content-range": content_range} if content_range else {}
    assert ranged_size(httpx.Response(status, headers=headers)) == size
