"""Which codec implementation runs where, and how the H.264 encoder is set up.

On a worker Ray gave a GPU, whole-stream decodes use NVDEC (``<codec>_cuvid``) and
encodes NVENC, each only if it opens here; otherwise FFmpeg's CPU codecs. Callers get
the same frames and the same kind of stream either way.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from fractions import Fraction
from typing import cast

import av

from dragon.media.gpu import gpu_assigned

log = logging.getLogger(__name__)

CUVID = {
    "h264": "h264_cuvid",
    "hevc": "hevc_cuvid",
    "av1": "av1_cuvid",
    "vp9": "vp9_cuvid",
    "vp8": "vp8_cuvid",
    "mpeg4": "mpeg4_cuvid",
    "mpeg2video": "mpeg2_cuvid",
    "mpeg1video": "mpeg1_cuvid",
    "mjpeg": "mjpeg_cuvid",
    "vc1": "vc1_cuvid",
}
WMA = ("wmav1", "wmav2")
PRESET = "veryfast"


@dataclass(frozen=True)
class Encoding:
    width: int
    height: int
    crop: bool
    crf: int = 23
    gop: int = 250
    video_bitrate: int | None = 3000  # kbps; a cap on top of the constant rate factor
    audio_codec: str | None = "aac"  # None: no audio track
    audio_bitrate: int = 128
    sample_rate: int = 44100

    @property
    def container(self) -> tuple[str, str, str]:
        """(muxer, extension, content type): MP4, or ASF when the audio is WMA."""
        if self.audio_codec in WMA:
            return "asf", "wmv", "video/x-ms-asf"
        return "mp4", "mp4", "video/mp4"


def even_size(width: int, height: int) -> tuple[int, int]:
    """H.264 in 4:2:0 needs even dimensions."""
    return max(2, width - width % 2), max(2, height - height % 2)


def nvdec_wanted() -> bool:
    """NVDEC for whole-stream decodes unless ``DRAGON_NVDEC=0`` in the workers'
    environment: on an H200 it was slower than 16 CPU cores (docs/benchmarks.md), so
    operators of such nodes may turn it off."""
    return os.environ.get("DRAGON_NVDEC", "1") != "0"


def cuvid_decoder(stream: av.video.stream.VideoStream) -> av.CodecContext | None:
    """An opened NVDEC decoder for ``stream``, or None where there is none for its codec
    or it does not open here (no GPU, no NVIDIA decode library)."""
    name = CUVID.get(stream.codec_context.codec.canonical_name)
    if name is None:
        return None
    try:
        ctx = av.CodecContext.create(name, "r")
        ctx.extradata = stream.codec_context.extradata
        ctx.open()
        return ctx
    except (av.FFmpegError, ValueError) as exc:
        log.warning("%s does not open here (%s); decoding on the CPU", name, exc)
        return None


def h264_stream(out: av.container.OutputContainer, enc: Encoding, rate: Fraction) -> av.VideoStream:
    """NVENC when this worker was given a GPU and the encoder opens, else libx264."""
    name = h264_encoder(enc, rate)
    stream = cast(av.VideoStream, out.add_stream(name, rate=rate))
    if name == "h264_nvenc":
        _configure(stream, enc, {"preset": "p4", "rc": "vbr", "cq": str(enc.crf)})
    else:
        _configure(stream, enc, {"crf": str(enc.crf), "preset": PRESET})
    return stream


def h264_encoder(enc: Encoding, rate: Fraction = Fraction(25)) -> str:
    """h264_nvenc on a worker given a GPU whose NVENC opens (H100/H200 have none), else libx264."""
    return "h264_nvenc" if gpu_assigned() and _nvenc_opens(enc, rate) else "libx264"


_nvenc_state: dict[str, bool] = {}


def _nvenc_opens(enc: Encoding, rate: Fraction) -> bool:
    """Try NVENC once per process on a scratch context, so a failure leaves no broken
    stream in the output (a GPU node without the NVIDIA encode library, say)."""
    if "ok" not in _nvenc_state:
        try:
            ctx = av.CodecContext.create("h264_nvenc", "w")
            ctx.width, ctx.height, ctx.pix_fmt = enc.width, enc.height, "yuv420p"
            ctx.time_base = 1 / rate
            ctx.open()
            _nvenc_state["ok"] = True
        except (av.FFmpegError, ValueError) as exc:
            log.warning("h264_nvenc does not open here (%s); encoding with libx264", exc)
            _nvenc_state["ok"] = False
    return _nvenc_state["ok"]


def _configure(stream: av.VideoStream, enc: Encoding, options: dict[str, str]) -> None:
    stream.width, stream.height = enc.width, enc.height
    stream.pix_fmt = "yuv420p"
    stream.gop_size = enc.gop
    if enc.video_bitrate:
        options = {**options, "maxrate": f"{enc.video_bitrate}k", "bufsize": f"{2 * enc.video_bitrate}k"}
    stream.codec_context.options = options
