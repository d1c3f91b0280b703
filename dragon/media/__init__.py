"""Media helpers: pure functions on files and decoded media, no Ray."""

from pathlib import Path
from typing import BinaryIO

# What media helpers read: a local file, or a seekable binary file object such as a remote
# input read by HTTP range (dragon.storage.fetch.RangedFile).
Source = Path | BinaryIO
