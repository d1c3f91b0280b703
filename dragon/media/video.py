"""Video helpers on PyAV: safe opening, probing, and frames at given times.

Opening is locked down: only the ``file`` protocol and a whitelist of container
demuxers, so a playlist (HLS), a concat script or an image-sequence pattern cannot make
FFmpeg read other local files or URLs. Frames are reached by seeking to the keyframe
before the wanted time and decoding forward, never by decoding the whole file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import av
from PIL import Image

from dragon.errors import InvalidContentError

# Container demuxers a video input may use (FFmpeg names).
DEMUXERS = ",".join([
    "mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm", "avi", "flv", "asf", "mpegts",
    "mpeg", "mpegvideo", "mxf", "ogg", "h264", "hevc", "m4v", "ivf", "obu", "mjpeg", "gif",
])
OPEN_OPTIONS = {"protocol_whitelist": "file", "format_whitelist": DEMUXERS}

CONTENT_TYPES = {
    "avi": "video/x-msvideo", "flv": "video/x-flv", "asf": "video/x-ms-asf", "mpegts": "video/mp2t",
    "mpeg": "video/mpeg", "mpegvideo": "video/mpeg", "mxf": "application/mxf", "ogg": "video/ogg",
    "ivf": "video/x-ivf", "gif": "image/gif", "h264": "video/h264", "hevc": "video/h265",
}

MAX_SIDE = 16384
MAX_DURATION = 48 * 3600.0


@dataclass(frozen=True)
class Probe:
    content_type: str
    width: int  # as displayed: rotation applied
    height: int
    coded_width: int
    coded_height: int
    duration: float
    frame_rate: float | None
    alpha: bool
    rotation: float  # counter-clockwise degrees that show the video as shot
    video_codec: str
    audio_codec: str | None

    def values(self) -> dict[str, Any]:
        """The spec's video.info output values."""
        return {
            "content_type": self.content_type,
            "width": self.width,
            "height": self.height,
            "duration": self.duration,
            "frame_rate": self.frame_rate,
            "alpha": self.alpha,
            "rotation": self.rotation,
            "audio_codec": self.audio_codec,
            "video_codec": self.video_codec,
        }


def open_video(path: Path) -> av.container.InputContainer:
    try:
        container = av.open(str(path), options=OPEN_OPTIONS)
    except (av.FFmpegError, EOFError, OSError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidContentError(f"not a readable video ({_reason(exc)})") from None
    if not container.streams.video:
        container.close()
        raise InvalidContentError("the file has no video stream")
    return container


def probe(path: Path) -> Probe:
    with open_video(path) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        if not (0 < ctx.width <= MAX_SIDE and 0 < ctx.height <= MAX_SIDE):
            raise InvalidContentError(f"unsupported picture size {ctx.width}x{ctx.height}")
        duration = _duration(container, stream)
        if duration > MAX_DURATION:
            raise InvalidContentError(f"the declared duration ({duration:.0f} s) is beyond the limit")
        first = next(_frames(container, stream), None)
        if first is None:
            raise InvalidContentError("no frame of the video can be decoded")
        rotation = float(first.rotation or 0)
        rotation = 180.0 if rotation == -180.0 else rotation
        swap = round(rotation) % 180 == 90
        rate = stream.average_rate or stream.guessed_rate
        audio = container.streams.audio[0].codec_context.codec.canonical_name if container.streams.audio else None
        return Probe(
            content_type=_content_type(container, ctx.codec.canonical_name, audio),
            width=ctx.height if swap else ctx.width,
            height=ctx.width if swap else ctx.height,
            coded_width=ctx.width,
            coded_height=ctx.height,
            duration=round(duration, 3),
            frame_rate=round(float(rate), 3) if rate else None,
            alpha=_has_alpha(ctx.pix_fmt),
            rotation=rotation,
            video_codec=ctx.codec.canonical_name,
            audio_codec=audio,
        )


def frames_at(path: Path, times: list[float]) -> Iterator[Image.Image]:
    """The displayed picture (rotation applied) at each time, in order of ``times``.

    Each time seeks to the keyframe at or before it and decodes forward to the first
    frame that reaches it; past the end, the last frame decoded is used.
    """
    with open_video(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        base = stream.time_base
        for t in times:
            target = max(0.0, t)
            try:
                container.seek(int(target / base) + (stream.start_time or 0), stream=stream, backward=True)
            except av.FFmpegError:
                container.seek(0)
            chosen = None
            for frame in _frames(container, stream):
                chosen = frame
                if frame.time is not None and frame.time + 0.5 * _frame_step(stream) >= target + _start(stream):
                    break
            if chosen is None:
                raise InvalidContentError(f"no frame can be decoded near {t:.3f} s")
            image = chosen.to_image()
            if chosen.rotation:
                image = image.rotate(chosen.rotation, expand=True)
            yield image


def _frames(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> Iterator[av.VideoFrame]:
    try:
        yield from container.decode(stream)
    except (av.FFmpegError, EOFError) as exc:
        if not isinstance(exc, EOFError):
            raise InvalidContentError(f"the video could not be decoded ({_reason(exc)})") from None


def _content_type(container: av.container.InputContainer, video: str, audio: str | None) -> str:
    """From the demuxer, refined by the MP4 brand and, for Matroska, by WebM's codecs
    (the input file's name carries no extension)."""
    demuxer = container.format.name.split(",")[0]
    if demuxer == "mov":
        brand = str(container.metadata.get("major_brand", "")).strip()
        return {"qt": "video/quicktime", "M4V": "video/x-m4v"}.get(brand, "video/3gpp" if brand.startswith("3g") else "video/mp4")
    if demuxer == "matroska":
        webm = video in ("vp8", "vp9", "av1") and audio in (None, "vorbis", "opus")
        return "video/webm" if webm else "video/x-matroska"
    return CONTENT_TYPES.get(demuxer, "application/octet-stream")


def _has_alpha(pix_fmt: str | None) -> bool:
    try:
        return pix_fmt is not None and len(av.VideoFormat(pix_fmt).components) in (2, 4)
    except (ValueError, av.FFmpegError):
        return False


def _duration(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000
    return 0.0


def _start(stream: av.video.stream.VideoStream) -> float:
    return float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0


def _frame_step(stream: av.video.stream.VideoStream) -> float:
    rate = stream.average_rate or stream.guessed_rate
    return 1 / float(rate) if rate else 0.04


def _reason(exc: BaseException) -> str:
    """FFmpeg's reason without the file path it names (a server path)."""
    text = str(exc)
    if "] " in text:
        text = text.split("] ", 1)[1]
    return text.split(":", 1)[0][:120]
