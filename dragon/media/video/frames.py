"""Opening a video locked down (:mod:`dragon.media.containers`), decoding it, and the
pictures at given times.

Frames are reached by seeking to the keyframe before the wanted time and decoding
forward, never by decoding the whole file; so a remote input read by range costs the
index and one keyframe interval per picture.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import av
from PIL import Image

from dragon.errors import InvalidContentError
from dragon.media import Source
from dragon.media.containers import open_input, reason
from dragon.media.gpu import gpu_assigned
from dragon.media.video.codecs import cuvid_decoder, nvdec_wanted

# Container demuxers a video input may use (FFmpeg names).
DEMUXERS = (
    "mov",
    "mp4",
    "m4a",
    "3gp",
    "3g2",
    "mj2",
    "matroska",
    "webm",
    "avi",
    "flv",
    "asf",
    "mpegts",
    "mpeg",
    "mpegvideo",
    "mxf",
    "ogg",
    "h264",
    "hevc",
    "m4v",
    "ivf",
    "obu",
    "mjpeg",
    "gif",
)


def open_video(source: Source) -> av.container.InputContainer:
    return open_input(source, DEMUXERS, "video", "video")


def frames_at(source: Source, times: list[float]) -> Iterator[Image.Image]:
    """The displayed picture (rotation applied) at each time, in order of ``times``.

    Each time seeks to the keyframe at or before it and decodes forward to the first
    frame that reaches it; past the end, the last frame decoded is used.
    """
    with open_video(source) as container:
        stream = container.streams.video[0]
        decoder = Decoder(container, stream, gpu=False)
        turn = rotation(container, stream)
        base = stream.time_base
        for t in times:
            target = max(0.0, t)
            decoder.seek(int(target / base) + (stream.start_time or 0))
            chosen = None
            for frame in decoder.frames():
                chosen = frame
                if frame.time is not None and frame.time + 0.5 * _frame_step(stream) >= target + _start(stream):
                    break
            if chosen is None:
                raise InvalidContentError(f"no frame can be decoded near {t:.3f} s")
            image = chosen.to_image()
            if turn:
                image = image.rotate(turn, expand=True)
            yield image


class Decoder:
    """Decodes one video stream: NVDEC when ``gpu`` is allowed, the worker was given a
    GPU and the decoder opens for this stream; else FFmpeg's threaded CPU decoder. Same
    frames either way (NVDEC's differ by colour rounding only).

    Seek-heavy work (thumbs, strips) passes ``gpu=False``: on an H200 every NVDEC seek
    re-primes the decoder and a thumb took 0.52 s against 0.08 s on the CPU
    (docs/benchmarks.md)."""

    def __init__(self, container: av.container.InputContainer, stream: av.video.stream.VideoStream, gpu: bool = True):
        self.container = container
        self.stream = stream
        self.hw = cuvid_decoder(stream) if gpu and nvdec_wanted() and gpu_assigned() else None
        if self.hw is None:
            stream.thread_type = "AUTO"

    @property
    def name(self) -> str:
        return self.hw.name if self.hw is not None else self.stream.codec_context.codec.name

    def seek(self, offset: int) -> None:
        try:
            self.container.seek(offset, stream=self.stream, backward=True)
        except av.FFmpegError:
            self.container.seek(0)
        if self.hw is not None:
            self.hw.flush_buffers()

    def frames(self) -> Iterator[av.VideoFrame]:
        """Frames from the current position to the end."""
        if self.hw is None:
            yield from decode_frames(self.container, self.stream)
            return
        for packet in self.container.demux(self.stream):
            yield from self.decode(packet)

    def decode(self, packet: av.Packet) -> list[av.VideoFrame]:
        if self.hw is None:
            return decode_packet(packet)
        try:
            frames = self.hw.decode(None if packet.size == 0 else packet)
        except av.FFmpegError:
            return []
        for frame in frames:
            frame.time_base = self.stream.time_base
        return frames


def decode_frames(
    container: av.container.InputContainer, stream: av.video.stream.VideoStream
) -> Iterator[av.VideoFrame]:
    """Every frame from the current position on; a stream FFmpeg cannot read is an InvalidContentError."""
    try:
        yield from container.decode(stream)
    except (av.FFmpegError, EOFError) as exc:
        if not isinstance(exc, EOFError):
            raise InvalidContentError(f"the video could not be decoded ({reason(exc)})") from None


def decode_packet(packet: av.Packet) -> list[Any]:
    try:
        return packet.decode()
    except av.FFmpegError:
        return []  # a damaged packet: skip it, as players do


def rotation(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float:
    """Counter-clockwise degrees that show the video as shot, from its first frame; the
    container is left at its start."""
    first = next(decode_frames(container, stream), None)
    container.seek(0)
    return float(first.rotation or 0) if first is not None else 0.0


def _start(stream: av.video.stream.VideoStream) -> float:
    return float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0


def _frame_step(stream: av.video.stream.VideoStream) -> float:
    rate = stream.average_rate or stream.guessed_rate
    return 1 / float(rate) if rate else 0.04
