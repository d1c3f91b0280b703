"""video.info, video.thumb and video.strip (spec: Tasks Reference).

video.info reports the stored size and the rotation still to apply, as image.info does;
pictures and videos that Dragon makes are upright, and their sizes are what a viewer
sees (docs/api.md, "Spec details").
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from dragon.media import images
from dragon.media.video import codecs, transcode
from dragon.media.video.frames import frames_at
from dragon.media.video.probe import Probe, probe
from dragon.registry import Resources, TaskContext, TaskParams, task
from dragon.tasks.fields import CellHeight, CellWidth, Crf, Crop, Gop, Height, InputUrl, Poster, Width, Wrap

MAX_INPUT_BYTES = 4 * 1024**3
VIDEO = Resources(cpus=1.0, gpu=1.0, memory_mb=1024)  # transcodes: NVDEC and NVENC where there is a GPU
SEEKING = Resources(cpus=1.0, memory_mb=1024)  # thumbs and strips seek and decode on the CPU (docs/video.md)
Size = Field(default=None, ge=1, le=8192)


class InfoParams(TaskParams):
    url: InputUrl


@task(
    "video.info",
    InfoParams,
    resources=Resources(cpus=0.5, memory_mb=512),
    values=(
        "content_type",
        "width",
        "height",
        "duration",
        "frame_rate",
        "alpha",
        "rotation",
        "audio_codec",
        "video_codec",
    ),
)
def video_info(ctx: TaskContext, params: InfoParams) -> dict:
    """Probes the container and decodes one frame (for the display rotation)."""
    with ctx.open(params.url, MAX_INPUT_BYTES) as source:
        return probe(source).values()


class ThumbParams(TaskParams):
    url: InputUrl
    width: Width = Size
    height: Height = Size
    crop: Crop = False
    time: float = Field(default=0.0, ge=0, description="Second of the frame; past the end, the last frame.")
    format: Literal["jpeg", "png"] = Field(default="jpeg", description="Image format of the output.")
    poster: Poster = False
    quality: int = Field(default=75, ge=1, le=95, description="JPEG quality.")


@task(
    "video.thumb",
    ThumbParams,
    resources=SEEKING,
    values=("width", "height", "original_width", "original_height", "duration", "content_type"),
    files=("output",),
)
def video_thumb(ctx: TaskContext, params: ThumbParams) -> dict:
    """The frame at ``time`` (the last frame when ``time`` is past the end)."""
    with ctx.open(params.url, MAX_INPUT_BYTES) as source:
        info = probe(source)
        [frame] = frames_at(source, [min(params.time, info.duration)])
    size = images.target_size(frame.width, frame.height, params.width, params.height, params.crop)
    thumb = images.resize_to(frame, size, params.crop)
    if params.poster:
        thumb = images.draw_play_icon(thumb)
    out = ctx.scratch / "thumb"
    extension, content_type = images.save(thumb, out, params.format, quality=params.quality)
    return {
        "width": thumb.width,
        "height": thumb.height,
        "original_width": info.width,
        "original_height": info.height,
        "duration": info.duration,
        "content_type": content_type,
        "output": ctx.store(out, extension, content_type),
    }


class StripParams(TaskParams):
    url: InputUrl
    width: CellWidth = Field(ge=1, le=2048)
    height: CellHeight = Field(ge=1, le=2048)
    crop: Crop = False
    wrap: Wrap = Field(default=None, ge=1)
    start: float = Field(default=0.0, ge=0, description="Second of the first frame.")
    end: float | None = Field(default=None, ge=0, description="Second of the last frame; unset or past it: the end.")
    count: int = Field(default=10, ge=1, le=500, description="Frames, at equal intervals from start to end.")
    format: Literal["jpeg", "png"] = Field(default="jpeg", description="Image format of the output.")

    @model_validator(mode="after")
    def _ordered(self) -> StripParams:
        if self.end is not None and self.end < self.start:
            raise ValueError("end must not be before start")
        return self


@task(
    "video.strip",
    StripParams,
    resources=SEEKING,
    values=("count", "width", "height", "original_width", "original_height", "duration", "frame_rate", "content_type"),
    files=("output",),
)
def video_strip(ctx: TaskContext, params: StripParams) -> dict:
    """``count`` frames at equal intervals from ``start`` to ``end`` (both included),
    each seeked to rather than decoded through."""
    with ctx.open(params.url, MAX_INPUT_BYTES) as source:
        info = probe(source)
        end = min(params.end if params.end is not None else info.duration, info.duration)
        start = min(params.start, end)
        step = (end - start) / (params.count - 1) if params.count > 1 else 0.0
        times = [start + i * step for i in range(params.count)]
        cell = (params.width, params.height)
        strip = images.strip(
            frames_at(source, times), params.count, cell, params.crop, params.wrap, params.format == "png", ctx.progress
        )
    out = ctx.scratch / "strip"
    extension, content_type = images.save(strip, out, params.format)
    return {
        "count": params.count,
        "width": strip.width,
        "height": strip.height,
        "original_width": info.width,
        "original_height": info.height,
        "duration": info.duration,
        "frame_rate": info.frame_rate,
        "content_type": content_type,
        "output": ctx.store(out, extension, content_type),
    }


class ConvertParams(TaskParams):
    url: InputUrl
    width: Width = Size
    height: Height = Size
    crop: Crop = False
    audio_codec: Literal["mp2", "mp3", "aac", "wmav1", "wmav2"] = Field(
        default="aac", description="Audio codec; the WMA codecs come in ASF, the others in MP4."
    )
    video_codec: Literal["h264"] = Field(default="h264", description="Video codec of the output.")
    video_bitrate: int = Field(default=3000, ge=50, le=200_000, description="Most video bit rate, in kb/s.")
    audio_bitrate: int = Field(default=128, ge=8, le=512, description="Audio bit rate, in kb/s.")
    sample_rate: Literal[22050, 44100, 48000] = Field(default=44100, description="Audio sample rate, in Hz.")
    crf: Crf = Field(default=23, ge=0, le=51)
    gop: Gop = Field(default=250, ge=1, le=1000)


OUTPUT_VALUES = (
    "content_type",
    "width",
    "height",
    "original_width",
    "original_height",
    "duration",
    "frame_rate",
    "audio_codec",
    "video_codec",
    "alpha",
    "rotation",
)


@task("video.convert", ConvertParams, resources=VIDEO, values=OUTPUT_VALUES, files=("output",))
def video_convert(ctx: TaskContext, params: ConvertParams) -> dict:
    """H.264 with the chosen audio codec, upright, in MP4 with its index first (ASF for
    WMA audio); progress is the percentage of the source encoded."""
    source = ctx.fetch(params.url, MAX_INPUT_BYTES).path
    info = probe(source)
    enc = codecs.Encoding(
        *_output_size(info, params.width, params.height, params.crop),
        crop=params.crop,
        crf=params.crf,
        gop=params.gop,
        video_bitrate=params.video_bitrate,
        audio_codec=params.audio_codec,
        audio_bitrate=params.audio_bitrate,
        sample_rate=params.sample_rate,
    )
    return _encoded(ctx, info, enc, transcode.convert, source)


class ReverseParams(TaskParams):
    url: InputUrl
    width: Width = Size
    height: Height = Size
    crop: Crop = False
    video_codec: Literal["h264"] = Field(default="h264", description="Video codec of the output.")
    video_bitrate: int | None = Field(
        default=None, ge=50, le=200_000, description="Most video bit rate, in kb/s; unset: the source's."
    )
    crf: Crf = Field(default=23, ge=0, le=51)
    gop: Gop = Field(default=250, ge=1, le=1000)


@task("video.reverse", ReverseParams, resources=VIDEO, values=OUTPUT_VALUES, files=("output",))
def video_reverse(ctx: TaskContext, params: ReverseParams) -> dict:
    """The picture played backwards (no audio track), one keyframe interval at a time."""
    source = ctx.fetch(params.url, MAX_INPUT_BYTES).path
    info = probe(source)
    enc = codecs.Encoding(
        *_output_size(info, params.width, params.height, params.crop),
        crop=params.crop,
        crf=params.crf,
        gop=params.gop,
        video_bitrate=params.video_bitrate or info.video_bitrate,
        audio_codec=None,
    )
    return _encoded(ctx, info, enc, transcode.reverse, source)


def _output_size(info: Probe, width: int | None, height: int | None, crop: bool) -> tuple[int, int]:
    return codecs.even_size(*images.target_size(info.width, info.height, width, height, crop))


def _encoded(ctx: TaskContext, info: Probe, enc: codecs.Encoding, run: Callable[..., None], source: Path) -> dict:
    _, extension, content_type = enc.container
    out = ctx.scratch / f"output.{extension}"
    run(source, out, enc, lambda done: ctx.progress(round(100 * done)))
    result = probe(out).values()
    if result["audio_codec"] is not None:
        # MP4 tags MPEG audio layers II and III alike; say what was encoded.
        result["audio_codec"] = enc.audio_codec
    return {
        **result,
        "content_type": content_type,
        "original_width": info.width,
        "original_height": info.height,
        "output": ctx.store(out, extension, content_type),
    }
