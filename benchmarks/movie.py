"""video.create's renderer: seconds of video per second of wall time, and the speed-up
of segment-parallel rendering with 2 Ray workers against 1, in one run.

The movie is the issue's: 30 s at 360p, 8 photos with kenburns and 1 s crossfades, a
zone text and a music track, antialias 1. Inputs come from ../shared/media. Every
figure includes decoding, compositing, H.264 encoding, the soundtrack and the join.

    python benchmarks/movie.py            # the 30 s movie
    python benchmarks/movie.py --quick    # a 6 s movie, for a smoke run
    python benchmarks/movie.py --antialias 4   # the spec's default antialias (2x2 supersampling)
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per render worker, as Ray gives them

import ray  # noqa: E402
from PIL import Image  # noqa: E402

from dragon.media import audio  # noqa: E402
from dragon.media.video.probe import probe as probe_video  # noqa: E402
from dragon.movie.render import Job, Movie  # noqa: E402
from dragon.tasks.movie import export  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"
MUSIC = MEDIA / "audio_beats" / "librosa_data" / "Kevin_MacLeod_-_Vibe_Ace.ogg"


def definition(photos: list[Path], seconds: float) -> str:
    """``seconds`` of kenburns over the photos, cross-faded, under a title and music."""
    each = (seconds + len(photos) - 1) / len(photos)  # each 1 s crossfade overlaps two photos
    items = []
    for i, _ in enumerate(photos):
        if i:
            items.append('<transition type="crossfade" duration="1"/>')
        items.append(f'<effect type="kenburns" duration="{each:.4f}"><image filename="photo{i}"/></effect>')
    return (
        '<movie service="craftsman-1.0"><body><stack>'
        f'<sequence>{"".join(items)}</sequence>'
        '<text type="zone" top="0.05" left="0.1" right="0.1" height="0.18" fontcolor="#ffffff">Summer 2026</text>'
        '<audio filename="music" duration=".." fadeout="2"/>'
        "</stack></body></movie>"
    )


def main() -> None:
    quick = "--quick" in sys.argv
    antialias = int(sys.argv[sys.argv.index("--antialias") + 1]) if "--antialias" in sys.argv else 1
    seconds = 6.0 if quick else 30.0
    pool = sorted((MEDIA / "images_exif" / "exif_samples").glob("*.jpg"), key=lambda p: -_pixels(p))
    photos = pool[:2] if quick else pool[:8]
    files = {f"photo{i}": p for i, p in enumerate(photos)}
    files["music"] = MUSIC
    job = Job(definition(photos, seconds), "360p", antialias, {"music": audio.probe(MUSIC).duration})
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}; "
          f"movie: {seconds:.0f} s at 360p (640x360, 25 fps), {len(photos)} photos, antialias {antialias}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        movie = Movie(job, files)
        started = time.perf_counter()
        single = movie.finish([movie.render(0, movie.frames, work / "one.mp4")], work / "inline.mp4")
        rows.append(("one process, no Ray", time.perf_counter() - started, single))
        # Start both render workers first: a running service keeps its workers warm.
        warm = work / "warm"
        warm.mkdir()
        short = Job(definition(photos[:1], 2.0), "360p", 1, {})
        export(Movie(short, files), short, files, warm, work, 1.0, 2, lambda done: None)
        best: dict[int, tuple[float, Path]] = {}
        for round_ in range(2):  # alternating, best of each: the machine's other load varies
            for workers in (1, 2):
                into = work / f"ray-{workers}-{round_}"
                into.mkdir()
                started = time.perf_counter()
                out = export(movie, job, files, into, work, 5.0, workers, lambda done: None)
                wall = time.perf_counter() - started
                if workers not in best or wall < best[workers][0]:
                    best[workers] = (wall, out)
        for workers, (wall, out) in sorted(best.items()):
            rows.append((f"Ray segments, {workers} worker{'s' if workers > 1 else ''}", wall, out))
        for name, wall, out in rows:
            probe = probe_video(out)
            assert abs(probe.duration - movie.duration) < 0.1 and (probe.width, probe.height) == (640, 360)
            print(f"{name:28s} {wall:6.2f} s wall   {movie.duration / wall:5.2f} s of video per s")
        speedup = rows[1][1] / rows[2][1]
        print(f"2 workers against 1: {speedup:.2f}x (goal 1.6x); best: {movie.duration / rows[2][1]:.2f}x real time (goal 2x)")
    ray.shutdown()


def _pixels(path: Path) -> int:
    with Image.open(path) as image:
        return image.width * image.height


if __name__ == "__main__":
    main()
