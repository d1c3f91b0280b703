"""video.create: an SXML movie to an MP4 export, a preview and a thumbnail.

The inputs are fetched once, here; long movies are cut into segments rendered by Ray
workers in parallel (each gets the inputs through the object store) and joined
without re-encoding (docs/sxml.md).
"""

from __future__ import annotations

import math
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Literal

import ray
from pydantic import Field, field_validator
from ray.exceptions import RayTaskError

from dragon.errors import TaskError
from dragon.media import audio, speech, video
from dragon.placement import GpuRule
from dragon.registry import Resources, TaskContext, TaskParams, task
from dragon.sxml import Document, parse, profiles

if TYPE_CHECKING:  # the renderer (torch) is imported by the workers that render, not by every process
    from dragon.movie.render import Job, Movie

MAX_DEFINITION = 1024 * 1024
MAX_INPUT_BYTES = 2 * 1024**3


class CreateParams(TaskParams):
    definition: str = Field(min_length=1, max_length=MAX_DEFINITION,
                            description="The movie, in SXML (docs/sxml.md); media by http(s) URL.")
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
    from dragon.movie.render import Job, Movie

    document = parse(params.definition)
    files, lengths = _gather(ctx, document)
    job = Job(params.definition, params.profile, params.antialias, lengths)
    movie = Movie(job, files)
    try:
        result: dict[str, Any] = {"duration": round(movie.duration, 3), "width": movie.width, "height": movie.height}
        if params.preview:
            preview = Movie(job, files, scale=0.5, antialias=1)
            try:
                path = preview.finish(
                    [preview.render(0, preview.frames, ctx.scratch / "preview-video.mp4", preset="ultrafast")],
                    ctx.scratch / "preview.mp4",
                )
            finally:
                preview.close()
            result["preview"] = ctx.store(path, "mp4", "video/mp4", main=False)
            ctx.partial_result({"duration": result["duration"], "preview": result["preview"]}, progress=0)
        if params.export:
            export = _export(ctx, movie, job, files)
            result["export"] = ctx.store(export, "mp4", "video/mp4")
        thumbnail = movie.thumbnail(min(params.thumbnail_time, movie.duration), ctx.scratch / "thumbnail.jpg")
        result["thumbnail"] = ctx.store(thumbnail, "jpg", "image/jpeg", main=not params.export)
        for warning in movie.warnings:
            ctx.warn(warning)
        return result
    finally:
        movie.close()


def _gather(ctx: TaskContext, document: Document) -> tuple[dict[str, Path], dict[str, float]]:
    """Every input fetched once, every voice spoken once, and their lengths."""
    from dragon.movie.render import inputs
    from dragon.movie.sources import media_key

    urls, voices = inputs(document)
    files: dict[str, Path] = {url: ctx.fetch(url, MAX_INPUT_BYTES).path for url in sorted(urls)}
    lengths: dict[str, float] = {}
    for node in voices:
        key = media_key(node) or ""
        if key not in files:
            files[key] = ctx.scratch / f"{key.split(':')[1]}.wav"
            lengths[key] = speech.synthesize(node.text, node.attrs.get("voice"), files[key])

    def measure(node: Any) -> None:
        key = media_key(node)
        if key in files and key not in lengths and node.tag in ("audio", "video"):
            lengths[key] = video.probe(files[key]).duration if node.tag == "video" else audio.probe(files[key]).duration
        for child in node.children:
            measure(child)

    measure(document.movie)
    return files, lengths


def _export(ctx: TaskContext, movie: Movie, job: Job, files: dict[str, Path]) -> Path:
    return export(movie, job, files, ctx.scratch, ctx.settings.scratch_dir, ctx.settings.render_segment_seconds,
                  ctx.settings.render_parallel, lambda done: ctx.progress(round(100 * done)), ctx.settings.use_gpus)


def export(movie: Movie, job: Job, files: dict[str, Path], into: Path, scratch_root: Path, segment_seconds: float,
           parallel: int, progress: Callable[[float], None], use_gpus: bool | None = None) -> Path:
    """The whole movie as ``into/export.mp4``: segments rendered in parallel on Ray
    workers (at most ``parallel`` at once, 0 for no limit; with a GPU share as
    ``use_gpus`` rules, see dragon/placement.py) while this worker mixes and encodes the
    soundtrack, then joined. A one-segment movie renders right here."""
    from dragon.movie.encode import join
    from dragon.movie.render import split

    ranges = split(movie.frames, math.ceil(movie.duration / segment_seconds))
    out = into / "export.mp4"
    if len(ranges) == 1 or not ray.is_initialized():
        segment = movie.render(0, movie.frames, into / "segment-0.mp4", lambda n: progress(n / movie.frames))
        return movie.finish([segment], out)
    with ThreadPoolExecutor(1) as pool:
        sound = pool.submit(movie.encoded_soundtrack, into / "sound.mp4")
        segments = render_segments(job, files, ranges, scratch_root, parallel, lambda done: progress(done / len(ranges)), into,
                                   GpuRule(use_gpus).ask())
        join(segments, sound.result(), out)
    return out


def render_segments(job: Job, files: dict[str, Path], ranges: list[tuple[int, int]], scratch_root: Path,
                    parallel: int, progress: Callable[[int], None], into: Path, gpu: bool) -> list[Path]:
    """Each range of frames rendered by its own Ray task, at most ``parallel`` at once
    (0: as many as the cluster runs). Returns the segment files, in order, under ``into``."""
    payload = {key: ray.put(path.read_bytes()) for key, path in files.items()}
    options: dict[str, Any] = {"num_cpus": 1}
    if gpu:
        options["num_gpus"] = 0.5
    window = parallel or len(ranges)
    pending: dict[ray.ObjectRef, int] = {}
    paths: dict[int, Path] = {}
    queue = list(enumerate(ranges))
    try:
        while queue or pending:
            while queue and len(pending) < window:
                i, (first, stop) = queue.pop(0)
                pending[_segment.options(**options).remote(job, payload, first, stop, str(scratch_root))] = i
            [ready], _ = ray.wait(list(pending), num_returns=1)
            i = pending.pop(ready)
            paths[i] = into / f"segment-{i}.mp4"
            paths[i].write_bytes(ray.get(ready))
            progress(len(paths))
    except RayTaskError as exc:
        if isinstance(exc.cause, TaskError):
            raise exc.cause from None
        raise
    finally:
        for ref in pending:
            ray.cancel(ref)
    return [paths[i] for i in range(len(ranges))]


@ray.remote(max_retries=2)
def _segment(job: Job, payload: dict[str, ray.ObjectRef], first: int, stop: int, scratch_root: str) -> bytes:
    """One range of frames as an H.264 MP4 segment (its bytes)."""
    from dragon.movie.render import Movie

    work = Path(scratch_root) / f"segment-{uuid.uuid4().hex}"
    work.mkdir(parents=True)
    try:
        keys = list(payload)
        files = {}
        for i, (key, data) in enumerate(zip(keys, ray.get([payload[k] for k in keys]))):
            files[key] = work / f"input-{i}"
            files[key].write_bytes(data)
        movie = Movie(job, files)
        try:
            return movie.render(first, stop, work / "segment.mp4", threads=1).read_bytes()
        finally:
            movie.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
