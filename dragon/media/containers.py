"""Opening media files with FFmpeg, locked down.

Only the ``file`` protocol and a whitelist of container demuxers are allowed, so a
playlist (HLS), a concat script or an image-sequence pattern can never make FFmpeg read
other local files or URLs. Shared by the audio and video helpers.

An input is a local file or a seekable binary file object: a remote input read by HTTP
range (:class:`dragon.storage.fetch.RangedFile`) is one, and FFmpeg reads it through
PyAV's Python I/O, asking only for the bytes it needs.
"""

from __future__ import annotations

from pathlib import Path

import av

from dragon.errors import InvalidContentError
from dragon.media import Source

MAX_DURATION = 48 * 3600.0  # seconds; longer declared durations are refused
WAV_PROBESIZE = 8192  # bytes FFmpeg's stream analysis may read of a WAV file (FFmpeg's default: 5 MB)


def open_input(source: Source, demuxers: tuple[str, ...], what: str, needs: str) -> av.container.InputContainer:
    """Open ``source`` with only ``demuxers``; it must hold a ``needs`` ("audio" or "video") stream."""
    options = {"protocol_whitelist": "file", "format_whitelist": ",".join(demuxers)}
    if _is_wav(source):
        # A WAV header says all there is to know of its stream, yet FFmpeg's analysis reads
        # on packet by packet through its first 5 seconds: 7-40 ms of CPU per open, most
        # of the work of a short clip's task (docs/benchmarks.md).
        options["probesize"] = str(WAV_PROBESIZE)
    if not isinstance(source, Path):
        source.seek(0)  # a file object may have been read by an earlier open
    try:
        container = av.open(str(source) if isinstance(source, Path) else source, "r", options=options)
    except (av.FFmpegError, EOFError, OSError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidContentError(f"not a readable {what} ({reason(exc)})") from None
    if not getattr(container.streams, needs):
        container.close()
        raise InvalidContentError(f"the file has no {needs} stream")
    return container


def _is_wav(source: Source) -> bool:
    """Whether ``source`` starts as a RIFF WAVE file does (or its 64-bit forms, RF64 and BW64)."""
    try:
        if isinstance(source, Path):
            with source.open("rb") as file:
                head = file.read(12)
        else:
            source.seek(0)
            head = source.read(12)
    except OSError:
        return False  # the open that follows says what is wrong
    return head[:4] in (b"RIFF", b"RF64", b"BW64") and head[8:12] == b"WAVE"


def duration(container: av.container.InputContainer, stream: av.stream.Stream) -> float:
    """Seconds: the stream's own duration, else the container's, else 0."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000
    return 0.0


def reason(exc: BaseException) -> str:
    """FFmpeg's reason without the file path it names (a server path)."""
    text = str(exc)
    if "] " in text:
        text = text.split("] ", 1)[1]
    return text.split(":", 1)[0][:120]
