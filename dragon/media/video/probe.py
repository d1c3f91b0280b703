"""The facts video.info reports, from the container and one decoded frame (a file
nothing can be decoded from is refused here, and the first frame carries the display
rotation)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import av
import av.sidedata.sidedata
import numpy as np

from dragon.errors import InvalidContentError
from dragon.media import Source
from dragon.media.containers import MAX_DURATION
from dragon.media.containers import duration as media_duration
from dragon.media.video.frames import decode_frames, open_video

CONTENT_TYPES = {
    "avi": "video/x-msvideo",
    "flv": "video/x-flv",
    "asf": "video/x-ms-asf",
    "mpegts": "video/mp2t",
    "mpeg": "video/mpeg",
    "mpegvideo": "video/mpeg",
    "mxf": "application/mxf",
    "ogg": "video/ogg",
    "ivf": "video/x-ivf",
    "gif": "image/gif",
    "h264": "video/h264",
    "hevc": "video/h265",
}

MAX_SIDE = 16384


@dataclass(frozen=True)
class Probe:
    content_type: str
    width: int  # as displayed: rotation applied (what the movie and the thumbs work with)
    height: int
    coded_width: int
    coded_height: int
    duration: float
    frame_rate: float | None
    alpha: bool
    rotation: float  # counter-clockwise degrees that show the video as shot, in [0, 360)
    video_codec: str
    audio_codec: str | None
    video_bitrate: int | None = None  # kbps, when the container says
    mirrored: bool = False

    def values(self) -> dict[str, Any]:
        """The spec's video.info output values, in image.info's terms: the stored size and
        the rotation still to apply to it (null when a mirror is needed as well), so a
        client that applies the rotation gets the size a viewer sees."""
        return {
            "content_type": self.content_type,
            "width": self.coded_width,
            "height": self.coded_height,
            "duration": self.duration,
            "frame_rate": self.frame_rate,
            "alpha": self.alpha,
            "rotation": None if self.mirrored else self.rotation,
            "audio_codec": self.audio_codec,
            "video_codec": self.video_codec,
        }


def probe(source: Source) -> Probe:
    with open_video(source) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        if not (0 < ctx.width <= MAX_SIDE and 0 < ctx.height <= MAX_SIDE):
            raise InvalidContentError(f"unsupported picture size {ctx.width}x{ctx.height}")
        duration = media_duration(container, stream)
        if duration > MAX_DURATION:
            raise InvalidContentError(f"the declared duration ({duration:.0f} s) is beyond the limit")
        first = next(decode_frames(container, stream), None)
        if first is None:
            raise InvalidContentError("no frame of the video can be decoded")
        rotation = float(first.rotation or 0) % 360
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
            video_bitrate=(ctx.bit_rate or container.bit_rate or 0) // 1000 or None,
            mirrored=_mirrored(first),
        )


def _mirrored(frame: av.VideoFrame) -> bool:
    """Whether the display matrix flips the picture (its 2x2 part has a negative
    determinant): PyAV's ``rotation`` reads the same angle with or without a flip."""
    for data in frame.side_data:
        if data.type == av.sidedata.sidedata.Type.DISPLAYMATRIX:
            m = np.frombuffer(bytes(data)[:36], "<i4").astype(np.float64).reshape(3, 3)
            return m[0, 0] * m[1, 1] - m[0, 1] * m[1, 0] < 0
    return False


def _content_type(container: av.container.InputContainer, video: str, audio: str | None) -> str:
    """From the demuxer, refined by the MP4 brand and, for Matroska, by WebM's codecs
    (the input file's name carries no extension)."""
    demuxer = container.format.name.split(",")[0]
    if demuxer == "mov":
        brand = str(container.metadata.get("major_brand", "")).strip()
        return {"qt": "video/quicktime", "M4V": "video/x-m4v"}.get(
            brand, "video/3gpp" if brand.startswith("3g") else "video/mp4"
        )
    if demuxer == "matroska":
        webm = video in ("vp8", "vp9", "av1") and audio in (None, "vorbis", "opus")
        return "video/webm" if webm else "video/x-matroska"
    return CONTENT_TYPES.get(demuxer, "application/octet-stream")


def _has_alpha(pix_fmt: str | None) -> bool:
    try:
        return pix_fmt is not None and len(av.VideoFormat(pix_fmt).components) in (2, 4)
    except (ValueError, av.FFmpegError):
        return False
