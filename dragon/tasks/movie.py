"""video.create: an SXML movie to an export in its profile's format, a preview and a
thumbnail.

The task fetches the inputs once and speaks the voices; dragon.movie renders (long
movies in segments on Ray workers, docs/sxml.md).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from dragon.media import speech
from dragon.placement import GpuRule
from dragon.registry import Resources, TaskContext, TaskParams, task
from dragon.sxml import Document, parse, profiles

MAX_DEFINITION = 1024 * 1024
MAX_INPUT_BYTES = 2 * 1024**3


class CreateParams(TaskParams):
    definition: str = Field(
        min_length=1, max_length=MAX_DEFINITION, description="The movie, in SXML (docs/sxml.md); media by http(s) URL."
    )
    profile: str = Field(default="360p", description="Output size and encoding, e.g. 360p, 720p, 1080p (docs/sxml.md).")
    preview: bool = Field(default=False, description="Also publish a half-size preview first, as a partial result.")
    export: bool = Field(default=True, description="Render the full movie; false: the thumbnail (and preview) only.")
    thumbnail_time: float = Field(default=1.0, ge=0, description="Second of the movie the thumbnail shows.")
    antialias: Literal[1, 2, 4] = Field(default=4, description="Supersampling of moving pictures and texts (1: none).")

    @field_validator("profile")
    @classmethod
    def _known(cls, name: str) -> str:
        if name not in profiles.PROFILE_NAMES:
            raise ValueError(f"unknown profile {name!r}")
        return name


@task(
    "video.create",
    CreateParams,
    resources=Resources(cpus=1.0, gpu=0.5, memory_mb=2048),
    values=("duration", "width", "height"),
    files=("preview", "export", "thumbnail"),
)
def video_create(ctx: TaskContext, params: CreateParams) -> dict:
    """With ``preview``, a half-size preview is published first, as a partial result."""
    from dragon.movie.production import Production, RenderSettings
    from dragon.movie.render import Job, lengths

    document = parse(params.definition)
    files = _gather(ctx, document)
    job = Job(params.definition, params.profile, params.antialias, lengths(document, files))
    gpu = GpuRule(ctx.settings.use_gpus).ask() if params.export else False
    settings = RenderSettings(
        scratch_root=ctx.settings.scratch_dir,
        segment_seconds=ctx.settings.render_segment_seconds,
        parallel=ctx.settings.render_parallel,
        gpu=gpu,
        helpers=tuple(ctx.helpers()) if gpu else (),  # GPU compositing, in GPU nodes' pool members
        helper_slots=ctx.settings.pool_slots,
    )
    production = Production(job, files, settings, ctx.progress, preview=params.preview, export=params.export)
    try:
        movie = production.movie
        result: dict[str, Any] = {"duration": round(movie.duration, 3), "width": movie.width, "height": movie.height}
        if params.preview:
            fmt = production.preview_output.format
            result["preview"] = ctx.store(production.preview(ctx.scratch), fmt.extension, fmt.content_type, main=False)
            ctx.partial_result(
                {"duration": result["duration"], "preview": result["preview"]}, progress=production.percent
            )
        if params.export:
            fmt = movie.output.format
            result["export"] = ctx.store(production.export(ctx.scratch), fmt.extension, fmt.content_type)
        thumbnail = production.thumbnail(min(params.thumbnail_time, movie.duration), ctx.scratch / "thumbnail.jpg")
        result["thumbnail"] = ctx.store(thumbnail, "jpg", "image/jpeg", main=not params.export)
        for warning in production.warnings:
            ctx.warn(warning)
        return result
    finally:
        production.close()


def _gather(ctx: TaskContext, document: Document) -> dict[str, Path]:
    """Every input fetched once and every voice spoken once, by media key."""
    from dragon.movie.render import inputs
    from dragon.movie.sources import voice_key

    urls, voices = inputs(document)
    files: dict[str, Path] = {url: ctx.fetch(url, MAX_INPUT_BYTES).path for url in sorted(urls)}
    for node in voices:
        key = voice_key(node)
        if key not in files:
            files[key] = ctx.scratch / f"{key.split(':')[1]}.wav"
            speech.synthesize(node.text, node.attrs.get("voice"), files[key])
    return files
