"""audio.info, audio.convert, audio.waveform and audio.beats (spec: Tasks Reference)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from dragon.media import audio, images
from dragon.registry import Resources, TaskContext, TaskParams, task
from dragon.tasks.fields import InputUrl

MAX_INPUT_BYTES = 2 * 1024**3
AUDIO = Resources(cpus=1.0, memory_mb=512)
COLOUR = r"^#([0-9a-fA-F]{6}|[0-9a-fA-F]{8})$"  # #RRGGBB or #RRGGBBAA


class InfoParams(TaskParams):
    url: InputUrl


@task(
    "audio.info", InfoParams, resources=Resources(cpus=0.5, memory_mb=256), values=("duration", "content_type", "codec")
)
def audio_info(ctx: TaskContext, params: InfoParams) -> dict:
    """Duration rounded to 1/100 s; a cover picture in the file is not a video."""
    with ctx.open(params.url, MAX_INPUT_BYTES) as source:
        return audio.probe(source).values()


class ConvertParams(TaskParams):
    url: InputUrl
    codec: Literal["mp3", "vorbis", "aac"] = Field(
        default="mp3", description="mp3 (192 kb/s, .mp3), vorbis (160 kb/s, .ogg) or aac (160 kb/s, .m4a)."
    )
    force: bool = Field(default=False, description="Re-encode an input that is already in this codec and container.")


@task("audio.convert", ConvertParams, resources=AUDIO, values=("duration", "content_type"), files=("output",))
def audio_convert(ctx: TaskContext, params: ConvertParams) -> dict:
    """mp3 (192 kb/s) in .mp3, vorbis (160 kb/s) in .ogg, aac (160 kb/s) in .m4a. An input
    already in that codec and container is copied unless ``force`` asks to re-encode."""
    source = ctx.fetch(params.url, MAX_INPUT_BYTES).path
    audio.probe(source)
    _, _, extension, _, _ = audio.TARGETS[params.codec]
    out = ctx.scratch / f"output.{extension}"
    content_type = audio.convert(source, out, params.codec, params.force, lambda done: ctx.progress(round(100 * done)))
    return {
        "duration": audio.probe(out).values()["duration"],
        "content_type": content_type,
        "output": ctx.store(out, extension, content_type),
    }


class WaveformParams(TaskParams):
    url: InputUrl
    width: int = Field(default=1024, ge=1, le=16384, description="Image width in pixels: one peak per column.")
    height: int = Field(default=60, ge=1, le=4096, description="Image height in pixels.")
    vmargin: int = Field(default=0, ge=0, description="Pixels left empty above and below the waveform.")
    fill: str = Field(default="#000000", pattern=COLOUR, description="Colour of the waveform, #RRGGBB or #RRGGBBAA.")
    background: str = Field(
        default="#FFFFFF", pattern=COLOUR, description="Colour of the background, #RRGGBB or #RRGGBBAA."
    )
    start: float = Field(default=0.0, ge=0, description="Where the waveform starts in the audio, in seconds.")
    end: float | None = Field(default=None, gt=0, description="Where it ends, in seconds; unset: the end of the audio.")
    format: Literal["png", "jpeg"] = Field(default="jpeg", description="Image format of the output.")

    @model_validator(mode="after")
    def _ordered(self) -> WaveformParams:
        if self.end is not None and self.end <= self.start:
            raise ValueError("end must be after start")
        if 2 * self.vmargin >= self.height:
            raise ValueError("vmargin must leave room to draw")
        return self


@task(
    "audio.waveform",
    WaveformParams,
    resources=AUDIO,
    values=("duration", "width", "height", "content_type"),
    files=("output",),
)
def audio_waveform(ctx: TaskContext, params: WaveformParams) -> dict:
    """Peak envelope per column between ``start`` and ``end``, computed while decoding."""
    source = ctx.fetch(params.url, MAX_INPUT_BYTES).path
    levels, duration = audio.peaks(source, params.width, params.start, params.end)
    picture = audio.waveform_image(levels, params.height, params.vmargin, params.fill, params.background)
    out = ctx.scratch / "waveform"
    extension, content_type = images.save(picture, out, params.format, quality=90)
    return {
        "duration": round(duration, 2),
        "width": params.width,
        "height": params.height,
        "content_type": content_type,
        "output": ctx.store(out, extension, content_type),
    }


class BeatsParams(TaskParams):
    url: InputUrl


@task(
    "audio.beats",
    BeatsParams,
    resources=Resources(cpus=1.0, gpu=0.25, memory_mb=512, pooled=True),
    values=("beats", "downbeats", "duration"),
)
def audio_beats(ctx: TaskContext, params: BeatsParams) -> dict:
    """Beat and downbeat times in seconds (in the first hour of a longer file); a clip
    without a beat (silence, noise, a fraction of a second) gives empty lists, not an
    error. ``duration`` is the whole file's, an integer as the spec types it."""
    from dragon.media import beats  # torch loads in the workers that track beats, not in every worker

    source = ctx.fetch(params.url, MAX_INPUT_BYTES).path
    declared = audio.probe(source).duration
    found = beats.analyse(source)
    return {"beats": found.beats, "downbeats": found.downbeats, "duration": round(max(declared, found.duration))}
