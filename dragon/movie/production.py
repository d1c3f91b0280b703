"""The files of one ``video.create``: a preview, the export and a thumbnail, with one
progress over all of them.

Progress counts rendered frames, each weighted by its pixels (a half-size preview frame
counts a quarter of an export frame), so it moves as frames are drawn, the preview's
included, and never goes back.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray

from dragon.movie.encode import Output, join
from dragon.movie.render import Job, Movie, pictured, split
from dragon.movie.segments import Inputs, render_segments
from dragon.sxml import profiles


@dataclass(frozen=True, kw_only=True)
class RenderSettings:
    """Where and how an export renders: segments of ``segment_seconds`` on Ray workers,
    at most ``parallel`` at once (0: as Ray allows), each with half a GPU if ``gpu``,
    their scratch space under ``scratch_root``; or, given ``helpers`` (pool members), in
    them, up to ``helper_slots`` at a time in each (see :func:`render_segments`)."""

    scratch_root: Path
    segment_seconds: float
    parallel: int = 0
    gpu: bool = False
    helpers: tuple[Any, ...] = ()
    helper_slots: int = 1


class Production:
    """``progress`` hears the share done, in whole percents, each time it grows."""

    def __init__(
        self,
        job: Job,
        files: dict[str, Path],
        settings: RenderSettings,
        progress: Callable[[int], None],
        *,
        preview: bool,
        export: bool,
    ):
        self.job, self.files, self.settings = job, files, settings
        self.movie = Movie(job, files)
        self.preview_output = Output.preview(profiles.profile(job.profile))
        self._report = progress
        self._weights = {"export": _pixels(self.movie.output), "preview": _pixels(self.preview_output)}
        self._total = self.movie.frames * sum(
            self._weights[part] for part, wanted in (("preview", preview), ("export", export)) if wanted
        )
        self._done = 0.0
        self._sent = 0

    @property
    def percent(self) -> int:
        """The share done so far, as last reported."""
        return self._sent

    def preview(self, into: Path) -> Path:
        """The preview (``Output.preview``), rendered right here."""
        movie = Movie(self.job, self.files, self.preview_output, antialias=1)
        try:
            segment = into / "preview-video.nut"
            for done in movie.render(0, movie.frames, segment):
                self._advance("preview", done)
            self._commit("preview", movie.frames)
            return movie.finish([segment], into / f"preview.{self.preview_output.format.extension}")
        finally:
            movie.close()

    def export(self, into: Path) -> Path:
        """The movie in its profile's format. A movie longer than one segment, on Ray, is
        rendered in segments by Ray tasks while this worker mixes and encodes the
        soundtrack; the pieces are then joined."""
        movie, settings = self.movie, self.settings
        out = into / f"export.{movie.output.format.extension}"
        ranges = split(movie.frames, math.ceil(movie.duration / settings.segment_seconds))
        if len(ranges) == 1 or not ray.is_initialized():
            segment = into / "segment-0.nut"
            for done in movie.render(0, movie.frames, segment):
                self._advance("export", done)
            movie.finish([segment], out)
        else:
            shown = pictured(movie.document)
            inputs = Inputs.here({key: path for key, path in self.files.items() if key in shown})
            with ThreadPoolExecutor(1) as pool:
                sound = pool.submit(movie.encoded_soundtrack, into / "sound.nut")
                segments = render_segments(
                    self.job,
                    inputs,
                    ranges,
                    into,
                    settings.scratch_root,
                    lambda done: self._advance("export", done),
                    parallel=settings.parallel,
                    gpu=settings.gpu,
                    helpers=settings.helpers,
                    helper_slots=settings.helper_slots,
                )
                join(segments, sound.result(), out, movie.output.format)
        self._commit("export", movie.frames)
        return out

    def thumbnail(self, at: float, dest: Path) -> Path:
        return self.movie.thumbnail(at, dest)

    @property
    def warnings(self) -> list[str]:
        return self.movie.warnings

    def close(self) -> None:
        self.movie.close()

    def _advance(self, part: str, frames: int) -> None:
        """``frames`` of ``part`` are rendered, on top of the parts already committed."""
        self._send(self._done + frames * self._weights[part])

    def _commit(self, part: str, frames: int) -> None:
        self._done += frames * self._weights[part]
        self._send(self._done)

    def _send(self, done: float) -> None:
        percent = min(100, math.floor(100 * done / self._total)) if self._total else 100
        if percent > self._sent:
            self._sent = percent
            self._report(percent)


def _pixels(output: Output) -> int:
    width, height = output.display_size
    return width * height
