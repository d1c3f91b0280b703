"""Opening media files with FFmpeg, locked down.

Only the ``file`` protocol and a whitelist of container demuxers are allowed, so a
playlist (HLS), a concat script or an image-sequence pattern can never make FFmpeg read
other local files or URLs. Shared by the audio and video helpers.
"""

from __future__ import annotations

from pathlib import Path

import av

from dragon.errors import InvalidContentError

MAX_DURATION = 48 * 3600.0  # seconds; longer declared durations are refused


def open_input(path: Path, demuxers: tuple[str, ...], what: str) -> av.container.InputContainer:
    options = {"protocol_whitelist": "file", "format_whitelist": ",".join(demuxers)}
    try:
        return av.open(str(path), options=options)
    except (av.FFmpegError, EOFError, OSError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidContentError(f"not a readable {what} ({reason(exc)})") from None


def reason(exc: BaseException) -> str:
    """FFmpeg's reason without the file path it names (a server path)."""
    text = str(exc)
    if "] " in text:
        text = text.split("] ", 1)[1]
    return text.split(":", 1)[0][:120]
