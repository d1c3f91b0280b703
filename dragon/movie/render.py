"""One movie, parsed, timed and ready to draw: any range of its frames to an H.264
segment, one frame to a thumbnail, and its soundtrack.

Everything a render needs travels in a :class:`Job` (the SXML, the profile and the
lengths of the media, measured once), so a segment rendered on another worker resolves
exactly the same timeline.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

from dragon.media.video.codecs import even_size
from dragon.media.gpu import gpu_assigned
from dragon.movie import mixer
from dragon.movie.canvas import Canvas, downsample, to_rgb24
from dragon.movie.encode import SegmentWriter, encode_sound, join
from dragon.movie.scene import Scene
from dragon.movie.sources import Sources, media_key
from dragon.sxml import Document, parse, profiles, resolve


@dataclass(frozen=True)
class Job:
    definition: str
    profile: str = "360p"
    antialias: int = 1  # samples per pixel: 1, 2 or 4
    lengths: dict[str, float] = field(default_factory=dict)  # media key -> seconds


def inputs(document: Document) -> tuple[set[str], list[Any]]:
    """Files the movie reads (URLs) and its text-to-speech nodes."""
    urls: set[str] = set()
    voices: list[Any] = []

    def walk(node: Any) -> None:
        key = media_key(node)
        if key is not None and key.startswith("voice:"):
            voices.append(node)
        elif key is not None and node.tag in ("image", "video", "audio"):
            urls.add(key)
        for child in node.children:
            walk(child)

    walk(document.movie)
    return urls, voices


class Movie:
    """``files`` maps media keys (URLs and voice keys) to local files. ``scale`` shrinks
    the output (previews)."""

    def __init__(self, job: Job, files: dict[str, Path], scale: float = 1.0, antialias: int | None = None):
        self.job = job
        self.document = parse(job.definition)
        self.warnings = list(self.document.warnings)
        self.duration = resolve(self.document.movie, self._length)
        self.profile = profiles.profile(job.profile)
        self.rate = self.profile.fps
        self.width, self.height = even_size(round(self.profile.width * scale), round(self.profile.height * scale))
        samples = antialias if antialias is not None else job.antialias
        supersample = math.sqrt(max(1, samples))
        device = torch.device("cuda") if gpu_assigned() and torch.cuda.is_available() else torch.device("cpu")
        self.canvas = Canvas(round(self.width * supersample), round(self.height * supersample), device)
        self.files = files
        self.sources = Sources(files, self.canvas)
        self.scene = Scene(self.document.movie, self.sources, self.canvas, self.warnings)

    @property
    def frames(self) -> int:
        return max(1, round(self.duration * self.rate))

    def _length(self, node: Any) -> float | None:
        key = media_key(node)
        return self.job.lengths.get(key) if key else None

    @torch.inference_mode()
    def picture(self, index: int) -> np.ndarray:
        """Frame ``index`` as (H, W, 3) uint8 RGB."""
        layer = self.scene.frame(index / float(self.rate))
        return to_rgb24(downsample(layer, self.width, self.height))

    def render(self, first: int, stop: int, dest: Path, progress: Callable[[int], None] | None = None,
               preset: str | None = None, threads: int = 0) -> Path:
        """Frames [first, stop) to an H.264 segment (``threads``: the encoder's, 0 for its choice)."""
        with SegmentWriter(dest, self.width, self.height, self.rate, self.profile.video_bitrate, preset, threads) as writer:
            for done, index in enumerate(range(first, stop), 1):
                writer.write(self.picture(index))
                if progress is not None and done % 25 == 0:
                    progress(done)
        return dest

    def soundtrack(self) -> np.ndarray | None:
        """The mixed sound, or None for a silent movie."""
        sound = mixer.mix(self.document.movie, self.duration, self.files)
        return sound if np.any(sound) else None

    def encoded_soundtrack(self, dest: Path) -> Path | None:
        """The soundtrack encoded (AAC in MP4), or None for a silent movie."""
        sound = self.soundtrack()
        return None if sound is None else encode_sound(sound, dest, self.profile.audio_bitrate)

    def finish(self, segments: list[Path], dest: Path) -> Path:
        """Segments and the soundtrack joined into ``dest``."""
        join(segments, self.encoded_soundtrack(dest.with_name(dest.stem + "-sound.mp4")), dest)
        return dest

    def thumbnail(self, at: float, dest: Path) -> Path:
        index = min(self.frames - 1, max(0, int(at * float(self.rate))))
        Image.fromarray(self.picture(index)).save(dest, "JPEG", quality=85)
        return dest

    def close(self) -> None:
        self.sources.close()


def split(frames: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` nearly equal ranges of frame indices."""
    parts = max(1, min(parts, frames))
    bounds = [round(i * frames / parts) for i in range(parts + 1)]
    return [(a, b) for a, b in zip(bounds, bounds[1:]) if b > a]
