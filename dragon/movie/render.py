"""One movie, parsed, timed and ready to draw: any range of its frames to a video
segment in its profile's codec, one frame to a thumbnail, and its soundtrack.

Everything a render needs travels in a :class:`Job` (the SXML, the profile and the
lengths of the media, measured once), so a segment rendered on another worker resolves
exactly the same timeline.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from dragon.media import audio
from dragon.media.gpu import gpu_assigned
from dragon.media.video.probe import probe as probe_video
from dragon.movie import mixer
from dragon.movie.canvas import Canvas, to_rgb24
from dragon.movie.encode import Output, SegmentWriter, encode_sound, join
from dragon.movie.scene import Scene
from dragon.movie.sources import Sources, media_key
from dragon.sxml import Document, Node, parse, profiles, resolve

PROGRESS_STEP = 5  # frames between progress reports


@dataclass(frozen=True)
class Job:
    definition: str
    profile: str = "360p"
    antialias: int = 1  # samples per pixel: 1, 2 or 4
    lengths: dict[str, float] = field(default_factory=dict)  # media key -> seconds


def inputs(document: Document) -> tuple[set[str], list[Node]]:
    """Files the movie reads (URLs) and its text-to-speech nodes."""
    urls: set[str] = set()
    voices: list[Node] = []

    for node in document.movie.walk():
        key = media_key(node)
        if key is not None and key.startswith("voice:"):
            voices.append(node)
        elif key is not None and node.tag in ("image", "video", "audio"):
            urls.add(key)
    return urls, voices


def lengths(document: Document, files: dict[str, Path]) -> dict[str, float]:
    """Seconds of every audio and video file the movie plays, by media key."""
    found: dict[str, float] = {}
    for node in document.movie.walk():
        key = media_key(node)
        if key in files and key not in found and node.tag in ("audio", "video"):
            probe = probe_video if node.tag == "video" else audio.probe
            found[key] = probe(files[key]).duration
    return found


def pictured(document: Document) -> set[str]:
    """Media keys of the files the pictures show (images and videos): what a segment reads."""
    return {key for node in document.movie.walk() if node.tag in ("image", "video") and (key := media_key(node))}


class Movie:
    """``files`` maps media keys (URLs and voice keys) to local files; ``output`` is what
    renders write (the job's profile by default; a preview's is smaller)."""

    def __init__(self, job: Job, files: dict[str, Path], output: Output | None = None, antialias: int | None = None):
        self.job = job
        self.document = parse(job.definition)
        self.warnings = list(self.document.warnings)
        self.duration = resolve(self.document.movie, self._length)
        self.output = output or Output.export(profiles.profile(job.profile))
        self.rate = self.output.rate
        self.width, self.height = self.output.width, self.output.height
        device = torch.device("cuda") if gpu_assigned() and torch.cuda.is_available() else torch.device("cpu")
        self.canvas = Canvas(*self.output.display_size, device, job.antialias if antialias is None else antialias)
        self.files = files
        self.sources = Sources(files, self.canvas)
        self.scene = Scene(self.document.movie, self.sources, self.canvas, self.warnings)

    @property
    def frames(self) -> int:
        return max(1, round(self.duration * self.rate))

    def _length(self, node: Node) -> float | None:
        key = media_key(node)
        return self.job.lengths.get(key) if key else None

    @torch.inference_mode()
    def picture(self, index: int) -> np.ndarray:
        """Frame ``index`` as (H, W, 3) uint8 RGB at the displayed size."""
        return to_rgb24(self.scene.frame(index / float(self.rate)))

    def render(self, first: int, stop: int, dest: Path, *, threads: int = 0) -> Iterator[int]:
        """Frames [first, stop) to the video segment ``dest`` (``threads``: the encoder's,
        0 for its choice), as it is iterated: it yields the frames done every
        ``PROGRESS_STEP`` frames and once the segment is written."""
        with SegmentWriter(dest, self.output, threads=threads) as writer:
            for done, index in enumerate(range(first, stop), 1):
                writer.write(self.picture(index))
                if done % PROGRESS_STEP == 0 and index < stop - 1:
                    yield done
        yield stop - first

    def soundtrack(self) -> Iterator[np.ndarray]:
        """The mixed sound, chunk by chunk (see :func:`mixer.mix`)."""
        return mixer.mix(self.document.movie, self.duration, self.files)

    def encoded_soundtrack(self, dest: Path) -> Path | None:
        """The soundtrack encoded in the output's audio codec, or None for a silent movie."""
        return encode_sound(self.soundtrack(), dest, self.output)

    def finish(self, segments: list[Path], dest: Path) -> Path:
        """Segments and the soundtrack joined into ``dest``."""
        join(segments, self.encoded_soundtrack(dest.with_name(dest.stem + "-sound.nut")), dest, self.output.format)
        return dest

    def thumbnail(self, at: float, dest: Path) -> Path:
        """The frame at ``at`` seconds (clamped to the movie) as a JPEG at the displayed size."""
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
