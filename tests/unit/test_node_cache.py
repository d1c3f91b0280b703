"""A node's copies of its S3 outputs (dragon/storage/cache.py): bounded in bytes and age."""

from __future__ import annotations

import os
import time
from pathlib import Path

from dragon.storage.cache import NodeCache


def stored(tmp_path: Path, name: str, size: int) -> Path:
    path = tmp_path / name
    path.write_bytes(b"x" * size)
    return path


def test_a_kept_output_is_the_stored_file_itself(tmp_path: Path) -> None:
    cache = NodeCache(tmp_path / "cache", 1000, 60)
    source = stored(tmp_path, "a", 10)
    cache.keep("persistent/alice/K/a.bin", source)
    copy = cache.path("persistent/alice/K/a.bin")
    assert copy is not None and os.path.samefile(copy, source)
    assert cache.path("persistent/alice/K/other.bin") is None


def test_the_oldest_copies_go_first_past_the_byte_limit(tmp_path: Path) -> None:
    cache = NodeCache(tmp_path / "cache", 25, 60)
    for name in ("one", "two", "three"):
        cache.keep(name, stored(tmp_path, name, 10))
        time.sleep(0.01)
    assert cache.path("one") is None and cache.path("two") is not None and cache.path("three") is not None
    cache.keep("huge", stored(tmp_path, "huge", 26))  # larger than the whole cache: not kept
    assert cache.path("huge") is None


def test_copies_expire_and_can_be_forgotten(tmp_path: Path) -> None:
    cache = NodeCache(tmp_path / "cache", 1000, 0.05)
    cache.keep("old", stored(tmp_path, "old", 1))
    cache.keep("gone", stored(tmp_path, "gone", 1))
    cache.forget(["gone"])
    assert cache.path("gone") is None and cache.path("old") is not None
    time.sleep(0.1)
    assert cache.path("old") is None
