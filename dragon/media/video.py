"""Video helpers on PyAV: probing, frames at given times, conversion and reversal.

Inputs are opened locked down (:mod:`dragon.media.containers`). Frames are reached by
seeking to the keyframe before the wanted time and decoding forward, never by decoding
the whole file.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterator

import av
import av.filter
from PIL import Image

from dragon.errors import InvalidContentError
from dragon.media.containers import MAX_DURATION, open_input, reason
from dragon.media.containers import duration as media_duration
from dragon.media.gpu import gpu_assigned

log = logging.getLogger(__name__)

# Container demuxers a video input may use (FFmpeg names).
DEMUXERS = (
    "mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm", "avi", "flv", "asf", "mpegts",
    "mpeg", "mpegvideo", "mxf", "ogg", "h264", "hevc", "m4v", "ivf", "obu", "mjpeg", "gif",
)

CONTENT_TYPES = {
    "avi": "video/x-msvideo", "flv": "video/x-flv", "asf": "video/x-ms-asf", "mpegts": "video/mp2t",
    "mpeg": "video/mpeg", "mpegvideo": "video/mpeg", "mxf": "application/mxf", "ogg": "video/ogg",
    "ivf": "video/x-ivf", "gif": "image/gif", "h264": "video/h264", "hevc": "video/h265",
}

MAX_SIDE = 16384


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
    video_bitrate: int | None = None  # kbps, when the container says

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
    return open_input(path, DEMUXERS, "video", "video")


def probe(path: Path) -> Probe:
    with open_video(path) as container:
        stream = container.streams.video[0]
        ctx = stream.codec_context
        if not (0 < ctx.width <= MAX_SIDE and 0 < ctx.height <= MAX_SIDE):
            raise InvalidContentError(f"unsupported picture size {ctx.width}x{ctx.height}")
        duration = media_duration(container, stream)
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
            video_bitrate=(ctx.bit_rate or container.bit_rate or 0) // 1000 or None,
        )


def frames_at(path: Path, times: list[float]) -> Iterator[Image.Image]:
    """The displayed picture (rotation applied) at each time, in order of ``times``.

    Each time seeks to the keyframe at or before it and decodes forward to the first
    frame that reaches it; past the end, the last frame decoded is used.
    """
    with open_video(path) as container:
        stream = container.streams.video[0]
        decoder = Decoder(container, stream, gpu=False)
        rotation = _rotation(container, stream)
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
            if rotation:
                image = image.rotate(rotation, expand=True)
            yield image


CUVID = {
    "h264": "h264_cuvid", "hevc": "hevc_cuvid", "av1": "av1_cuvid", "vp9": "vp9_cuvid", "vp8": "vp8_cuvid",
    "mpeg4": "mpeg4_cuvid", "mpeg2video": "mpeg2_cuvid", "mpeg1video": "mpeg1_cuvid", "mjpeg": "mjpeg_cuvid",
    "vc1": "vc1_cuvid",
}


def nvdec_wanted() -> bool:
    """NVDEC for whole-stream decodes unless ``DRAGON_NVDEC=0`` in the workers'
    environment: on an H200 it was slower than 16 CPU cores (docs/benchmarks.md), so
    operators of such nodes may turn it off."""
    return os.environ.get("DRAGON_NVDEC", "1") != "0"


class Decoder:
    """Decodes one video stream: NVDEC (``<codec>_cuvid``) when ``gpu`` is allowed, the
    worker was given a GPU and the decoder opens for this stream; else FFmpeg's threaded
    CPU decoder. Same frames either way (NVDEC's differ by colour rounding only).

    Seek-heavy work (thumbs, strips) passes ``gpu=False``: on an H200 every NVDEC seek
    re-primes the decoder and a thumb took 0.52 s against 0.08 s on the CPU
    (docs/benchmarks.md)."""

    def __init__(self, container: av.container.InputContainer, stream: av.video.stream.VideoStream, gpu: bool = True):
        self.container = container
        self.stream = stream
        self.hw = _cuvid(stream) if gpu and nvdec_wanted() and gpu_assigned() else None
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
            yield from _frames(self.container, self.stream)
            return
        for packet in self.container.demux(self.stream):
            yield from self.decode(packet)

    def decode(self, packet: av.Packet) -> list[av.VideoFrame]:
        if self.hw is None:
            return _decode(packet)
        try:
            frames = self.hw.decode(None if packet.size == 0 else packet)
        except av.FFmpegError:
            return []
        for frame in frames:
            frame.time_base = self.stream.time_base
        return frames


def _cuvid(stream: av.video.stream.VideoStream) -> av.CodecContext | None:
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


def _frames(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> Iterator[av.VideoFrame]:
    try:
        yield from container.decode(stream)
    except (av.FFmpegError, EOFError) as exc:
        if not isinstance(exc, EOFError):
            raise InvalidContentError(f"the video could not be decoded ({reason(exc)})") from None


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



def _start(stream: av.video.stream.VideoStream) -> float:
    return float(stream.start_time * stream.time_base) if stream.start_time and stream.time_base else 0.0


def _frame_step(stream: av.video.stream.VideoStream) -> float:
    rate = stream.average_rate or stream.guessed_rate
    return 1 / float(rate) if rate else 0.04



# Encoding: conversion and reversal share one filter chain and one encoder set-up.

AUDIO_ENCODERS = {"aac": "aac", "mp3": "libmp3lame", "mp2": "mp2", "wmav1": "wmav1", "wmav2": "wmav2"}
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


def convert(source: Path, dest: Path, enc: Encoding, progress: Callable[[float], None]) -> None:
    """Transcode to H.264 (+ audio), upright, scaled or cropped to ``enc``'s size.

    MP4 output has its index first (``+faststart``) so it plays while downloading.
    ``progress`` receives the fraction of the source done, about once a second of media.
    """
    with open_video(source) as inp:
        vstream = inp.streams.video[0]
        decoder = Decoder(inp, vstream)
        _transcode(inp, vstream, decoder, dest, enc, progress)


def _transcode(
    inp: av.container.InputContainer, vstream: av.video.stream.VideoStream, decoder: Decoder, dest: Path,
    enc: Encoding, progress: Callable[[float], None],
) -> None:
    with _Writer(dest, enc, inp) as writer:
        astream = inp.streams.audio[0] if inp.streams.audio and enc.audio_codec else None
        duration = media_duration(inp, vstream) or 1.0
        reported = 0.0
        for packet in inp.demux(*(s for s in (vstream, astream) if s is not None)):
            for frame in decoder.decode(packet) if packet.stream is vstream else _decode(packet):
                if packet.stream is vstream:
                    at = frame.time  # before the filter chain renumbers the frame
                    writer.video(frame)
                    if at is not None and at - reported >= 1.0:
                        reported = at
                        progress(min(1.0, at / duration))
                else:
                    writer.audio(frame)


def reverse(source: Path, dest: Path, enc: Encoding, progress: Callable[[float], None]) -> None:
    """The video track played backwards, one keyframe interval at a time: memory
    holds one interval of output-sized frames, never the whole video."""
    keyframes = _keyframes(source)
    with open_video(source) as inp:
        vstream = inp.streams.video[0]
        decoder = Decoder(inp, vstream)
        _reverse(inp, decoder, keyframes, dest, enc, progress)


def _reverse(
    inp: av.container.InputContainer, decoder: Decoder, keyframes: list[int], dest: Path,
    enc: Encoding, progress: Callable[[float], None],
) -> None:
    with _Writer(dest, dataclasses.replace(enc, audio_codec=None), inp) as writer:
        bounds = list(zip(keyframes, keyframes[1:] + [None]))
        for done, (start, end) in enumerate(reversed(bounds)):
            decoder.seek(start)
            segment = []
            for frame in decoder.frames():
                if frame.pts is None or frame.pts < start:
                    continue
                if end is not None and frame.pts >= end:
                    break
                segment.extend(writer.filtered(frame))
            for frame in reversed(segment):
                writer.encode(frame)
            progress((done + 1) / len(bounds))


def _keyframes(source: Path) -> list[int]:
    """Presentation times of the video's keyframes, read from packets without decoding."""
    with open_video(source) as inp:
        stream = inp.streams.video[0]
        found = sorted({p.pts for p in inp.demux(stream) if p.is_keyframe and p.pts is not None})
    if not found:
        raise InvalidContentError("the video has no keyframe")
    return found


class _Writer:
    """Output container, filter chain (rotation, scale or crop, pixel format) and encoders."""

    def __init__(self, dest: Path, enc: Encoding, inp: av.container.InputContainer):
        vstream = inp.streams.video[0]
        self.enc = enc
        self.rate = vstream.average_rate or vstream.guessed_rate or Fraction(25)
        muxer, _, _ = enc.container
        self.out = av.open(str(dest), "w", format=muxer, options={"movflags": "+faststart"} if muxer == "mp4" else {})
        self.video_out = h264_stream(self.out, enc, self.rate)
        self.time_base = vstream.time_base
        self.rotation = _rotation(inp, vstream)
        self.graph: av.filter.Graph | None = None  # built from the first frame's format
        self.count = 0
        self.audio_out = None
        self.resampler = None
        if enc.audio_codec and inp.streams.audio:
            channels = min(2, inp.streams.audio[0].codec_context.channels or 2)
            layout = "stereo" if channels == 2 else "mono"
            self.audio_out = self.out.add_stream(AUDIO_ENCODERS[enc.audio_codec], rate=enc.sample_rate)
            self.audio_out.bit_rate = enc.audio_bitrate * 1000
            self.audio_out.layout = layout
            self.resampler = av.AudioResampler(format=self.audio_out.codec_context.format, layout=layout, rate=enc.sample_rate)

    def filtered(self, frame: av.VideoFrame) -> list[av.VideoFrame]:
        frame.pts = self.count  # the chain wants increasing times, whatever the order fed
        self.count += 1
        if self.graph is None:
            self.graph = _filters(frame, self.time_base, self.rotation, self.enc)
        self.graph.push(frame)
        return self._pull()

    def _pull(self) -> list[av.VideoFrame]:
        frames: list[av.VideoFrame] = []
        if self.graph is None:
            return frames
        while True:
            try:
                frames.append(self.graph.pull())
            except (av.BlockingIOError, av.EOFError):
                return frames

    def video(self, frame: av.VideoFrame) -> None:
        for out in self.filtered(frame):
            self.encode(out)

    def encode(self, frame: av.VideoFrame) -> None:
        frame.pts = self.encoded = getattr(self, "encoded", -1) + 1
        frame.time_base = 1 / self.rate
        self.out.mux(self.video_out.encode(frame))

    def audio(self, frame: av.AudioFrame) -> None:
        if self.resampler is None or self.audio_out is None:
            return
        frame.pts = None
        for resampled in self.resampler.resample(frame):
            self.out.mux(self.audio_out.encode(resampled))

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        try:
            if kind is None:
                if self.graph is not None:
                    self.graph.push(None)
                for frame in self._pull():
                    self.encode(frame)
                self.out.mux(self.video_out.encode(None))
                if self.audio_out is not None and self.resampler is not None:
                    for resampled in self.resampler.resample(None):
                        self.out.mux(self.audio_out.encode(resampled))
                    self.out.mux(self.audio_out.encode(None))
        finally:
            self.out.close()


def h264_stream(out: av.container.OutputContainer, enc: Encoding, rate: Fraction) -> av.VideoStream:
    """NVENC when this worker was given a GPU and the encoder opens, else libx264."""
    name = h264_encoder(enc, rate)
    stream = out.add_stream(name, rate=rate)
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


def _rotation(inp: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float:
    first = next(_frames(inp, stream), None)
    inp.seek(0)
    return float(first.rotation or 0) if first is not None else 0.0


def _filters(first: av.VideoFrame, time_base: Fraction, rotation: float, enc: Encoding) -> av.filter.Graph:
    """buffer → upright (transpose/flip) → scale (cover, then crop) → yuv420p → sink.
    The buffer takes the decoder's frames as they come (yuv420p on the CPU, nv12 from NVDEC)."""
    graph = av.filter.Graph()
    chain = [graph.add_buffer(width=first.width, height=first.height, format=first.format.name, time_base=time_base)]
    turn = round(rotation) % 360
    if turn == 90:
        chain.append(graph.add("transpose", "cclock"))
    elif turn == 270:
        chain.append(graph.add("transpose", "clock"))
    elif turn == 180:
        chain += [graph.add("hflip"), graph.add("vflip")]
    if enc.crop:
        chain.append(graph.add("scale", f"{enc.width}:{enc.height}:force_original_aspect_ratio=increase"))
        chain.append(graph.add("crop", f"{enc.width}:{enc.height}"))
    else:
        chain.append(graph.add("scale", f"{enc.width}:{enc.height}"))
    chain += [graph.add("setsar", "1"), graph.add("format", "yuv420p"), graph.add("buffersink")]
    for a, b in zip(chain, chain[1:]):
        a.link_to(b)
    graph.configure()
    return graph


def _decode(packet: av.Packet) -> list[Any]:
    try:
        return packet.decode()
    except av.FFmpegError:
        return []  # a damaged packet: skip it, as players do
