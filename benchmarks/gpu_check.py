"""The GPU paths against the CPU ones, in one run on a GPU machine (a few minutes):

1. video.create's renderer: the benchmark movie (benchmarks/movie.py: 30 s at 360p,
   8 photos with kenburns and crossfades, a zone text, music) composited with torch on
   the CPU, then on CUDA. Prints seconds of video per second for each (frames composited
   and encoded, one process) and the PSNR of CUDA's frames against the CPU's (every 10th
   frame, before encoding); they must be >= 40 dB.
2. audio.beats: every clip of ../shared/media/audio_beats (or generated click tracks)
   tracked with the spectra on the CPU, then on CUDA. Prints x real time for each; the
   beat and downbeat times must be the same within one feature frame (10 ms).
3. NVDEC: the first 30 frames of a generated H.264 clip decoded by h264_cuvid and by
   FFmpeg's CPU decoder (mean absolute difference), and a convert through NVDEC.
4. Pools: audio.beats through the HTTP API in stateless workers, then in a pool member
   (dragon/actors/pool.py); seconds per task, same results. Then a 15 s video.create in
   three segments, timed the same two ways (on a GPU its segments render in the member);
   the exports must last as long.

Without CUDA (or with --cpu-only) the CPU halves run and the CUDA ones are reported as
not run. ``--against cpu`` runs the second half on the CPU too: every comparison then
runs end to end on any machine (and must find equal outputs). Exit status 1 when a
comparison fails.

    python benchmarks/gpu_check.py [--cpu-only | --against cpu] [--quick] [--antialias N] [--media DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.movie import definition  # noqa: E402
from benchmarks.service import running_service  # noqa: E402
from benchmarks.video import make_source  # noqa: E402
from dragon.media import audio, beats  # noqa: E402
from dragon.media.video import codecs, frames, transcode  # noqa: E402
from dragon.media.video.probe import probe  # noqa: E402
from dragon.movie.render import Job, Movie  # noqa: E402
from tests.support.servers import Origin  # noqa: E402

MUSIC = Path("audio_beats/librosa_data/Kevin_MacLeod_-_Vibe_Ace.ogg")
PSNR_FLOOR = 40.0  # dB, CUDA frames against CPU frames
BEAT_TOLERANCE = 0.0101  # seconds: one feature frame (100 a second)


@dataclass
class Check:
    name: str
    cpu: str
    cuda: str
    verdict: str  # "ok", "FAILED: ...", or "not run: ..."


@contextlib.contextmanager
def gpu_visible(visible: bool) -> Iterator[None]:
    """What dragon.media.gpu.gpu_assigned() sees (Ray sets CUDA_VISIBLE_DEVICES for a
    GPU task). torch read the variable when CUDA started, at the top of main(), so this
    changes which device Dragon's code chooses, not which devices torch can use."""
    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = (before or "0") if visible else ""
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = before


def synchronised(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


# 1. The movie ----------------------------------------------------------------------


def movie_inputs(media: Path | None, work: Path, count: int) -> dict[str, Path]:
    """The benchmark movie's photos and music: from ../shared/media where it is there,
    else generated (gradients, shapes and a click track), so the check runs anywhere."""
    if media is not None and (media / MUSIC).exists():
        pool = sorted((media / "images_exif" / "exif_samples").glob("*.jpg"), key=lambda p: -_pixels(p))
        files = {f"photo{i}": p for i, p in enumerate(pool[:count])}
        files["music"] = media / MUSIC
        return files
    files = {}
    for i in range(count):
        width, height = [(4032, 2012), (1600, 1200), (640, 480), (100, 100)][i % 4]
        y, x = np.mgrid[0:height, 0:width]
        pixels = np.stack([(x * 255 // width + 40 * i) % 256, (y * 255 // height) % 256, ((x + y) // 7) % 256], -1)
        image = Image.fromarray(pixels.astype(np.uint8))
        ImageDraw.Draw(image).ellipse(
            (width // 4, height // 4, 3 * width // 4, 3 * height // 4),
            outline=(255, 255, 255),
            width=max(1, width // 60),
        )
        files[f"photo{i}"] = work / f"photo{i}.jpg"
        image.save(files[f"photo{i}"], quality=92)
    files["music"] = click_track(work / "music.wav", 40.0, 120.0)
    return files


def click_track(dest: Path, seconds: float, bpm: float) -> Path:
    """Clicks on every beat (louder on the first of four) over a quiet chord, mono WAV."""
    rate = 22050
    t = np.arange(int(seconds * rate)) / rate
    signal = 0.05 * (np.sin(2 * np.pi * 220 * t) + np.sin(2 * np.pi * 277 * t))
    for n, start in enumerate(np.arange(0.5, seconds, 60.0 / bpm)):
        i = int(start * rate)
        burst = np.random.default_rng(n).uniform(-1, 1, 600) * np.exp(-np.arange(600) / 120)
        signal[i : i + 600] += (0.9 if n % 4 == 0 else 0.5) * burst[: len(signal[i : i + 600])]
    pcm = (np.clip(signal, -1, 1) * 32767).astype(np.int16)[None, :]
    with av.open(str(dest), "w", format="wav") as out:
        stream = out.add_stream("pcm_s16le", rate=rate, layout="mono")
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return dest


def check_movie(files: dict[str, Path], seconds: float, antialias: int, accel: str | None, work: Path) -> Check:
    """``accel``: the device of the second run ("cuda", or "cpu" to check the check), or None."""
    photos = [files[k] for k in sorted(files) if k.startswith("photo")]
    job = Job(definition(photos, seconds), "360p", antialias, {"music": audio.probe(files["music"]).duration})
    runs: list[tuple[Movie, float]] = []
    for device in ("cpu", accel) if accel else ("cpu",):
        with gpu_visible(len(runs) == 1):
            movie = Movie(job, files)
            assert movie.canvas.device.type == device, f"the renderer chose {movie.canvas.device}, not {device}"
            movie.picture(0)  # warm up: decoders, fonts, CUDA kernels
            synchronised(device)
            started = time.perf_counter()
            for _ in movie.render(0, movie.frames, work / f"movie-{len(runs)}.mp4"):  # a generator of progress
                pass
            synchronised(device)
            runs.append((movie, time.perf_counter() - started))
    cpu_movie, cpu_wall = runs[0]
    cpu = f"{cpu_movie.duration / cpu_wall:.2f} s/s"
    if not accel:
        return Check(f"movie {seconds:.0f} s 360p, antialias {antialias}", cpu, "-", "not run: no CUDA")
    cuda_movie, cuda_wall = runs[1]
    sampled = range(0, cpu_movie.frames, 10)
    worst = min(psnr(cpu_movie.picture(i), cuda_movie.picture(i)) for i in sampled)
    verdict = "ok" if worst >= PSNR_FLOOR else f"FAILED: a frame at {worst:.1f} dB"
    return Check(
        f"movie {seconds:.0f} s 360p, antialias {antialias} (lowest PSNR {worst:.1f} dB over {len(sampled)} frames)",
        cpu,
        f"{cuda_movie.duration / cuda_wall:.2f} s/s",
        verdict,
    )


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


# 2. Beats --------------------------------------------------------------------------


def beat_clips(media: Path | None, work: Path) -> list[Path]:
    found: list[Path] = []
    if media is not None:
        for folder in ("audio_beats/synthetic", "audio_beats/librosa_data"):
            found += sorted(
                p for p in (media / folder).glob("*") if p.suffix in (".flac", ".ogg", ".mp3", ".m4a", ".wav")
            )
    return found or [click_track(work / f"clicks-{bpm}.wav", 20.0, bpm) for bpm in (90, 120, 140)]


def check_beats(clips: list[Path], accel: str | None) -> Check:
    seconds = sum(audio.probe(c).duration for c in clips)
    found: list[list[beats.Beats]] = []
    speed = []
    for device in ("cpu", accel) if accel else ("cpu",):
        beats.analyse(clips[0], device)  # warm up
        synchronised(device)
        started = time.perf_counter()
        found.append([beats.analyse(c, device) for c in clips])
        synchronised(device)
        speed.append(f"{seconds / (time.perf_counter() - started):.0f}x real time")
    name = f"beats, {len(clips)} clips ({seconds:.0f} s)"
    if not accel:
        return Check(name, speed[0], "-", "not run: no CUDA")
    problems = []
    for clip, on_cpu, on_cuda in zip(clips, found[0], found[1], strict=True):
        for what in ("beats", "downbeats"):
            a, b = np.array(getattr(on_cpu, what)), np.array(getattr(on_cuda, what))
            if a.shape != b.shape or (a.size and np.abs(a - b).max() > BEAT_TOLERANCE):
                problems.append(f"{clip.name} {what}: {a.size} on the CPU, {b.size} on CUDA")
    return Check(name, speed[0], speed[1], "ok" if not problems else "FAILED: " + "; ".join(problems[:3]))


# 3. NVDEC --------------------------------------------------------------------------


def first_frames(source: Path, count: int, gpu: bool) -> tuple[str, list[np.ndarray]]:
    with gpu_visible(gpu), frames.open_video(source) as container:
        decoder = frames.Decoder(container, container.streams.video[0])
        pictures = []
        for frame in decoder.frames():
            pictures.append(frame.to_ndarray(format="rgb24"))
            if len(pictures) == count:
                break
        return decoder.name, pictures


def check_nvdec(work: Path, accel: str | None) -> Check:
    source = work / "clip.mp4"
    make_source(source, 3)
    cpu_name, cpu_frames = first_frames(source, 30, gpu=False)
    if accel != "cuda":
        return Check("NVDEC, 30 frames of 1080p H.264", cpu_name, "-", "not run: no CUDA")
    gpu_name, gpu_frames = first_frames(source, 30, gpu=True)
    if gpu_name == cpu_name:
        return Check("NVDEC, 30 frames of 1080p H.264", cpu_name, gpu_name, "FAILED: h264_cuvid did not open")
    diff = max(
        float(np.abs(g.astype(np.int16) - c.astype(np.int16)).mean())
        for g, c in zip(gpu_frames, cpu_frames, strict=False)
    )
    with gpu_visible(True):
        out = work / "converted.mp4"
        transcode.convert(source, out, codecs.Encoding(640, 360, False), lambda done: None)
        converted = probe(out)
    ok = diff < 2.0 and len(gpu_frames) == len(cpu_frames) and (converted.width, converted.height) == (640, 360)
    return Check(
        f"NVDEC, 30 frames (largest mean abs diff {diff:.2f}); convert via NVDEC {converted.duration:.1f} s",
        cpu_name,
        gpu_name,
        "ok" if ok else "FAILED",
    )


# 4. Pools ----------------------------------------------------------------------------


def check_pools(clip: Path, accel: str | None, tasks: int = 4) -> Check:
    """audio.beats through the HTTP API, ``tasks`` times in a row: with stateless workers
    (DRAGON_WORKER_POOLS=off: whichever worker process Ray reuses, each new one paying
    torch's import and a CUDA context), then in a pool member (``gpu`` on a GPU machine, ``all``
    when the second half runs on the CPU), which keeps them. Prints the median seconds
    per task after the first; the results must be the same, and the pooled run must have
    run in a member."""
    if not accel:
        return Check("pools, audio.beats through the API", "-", "-", "not run: no second half")
    runs: dict[str, tuple[float, list[Any], bool, float]] = {}
    origin = Origin(clip.parent)
    try:
        for mode in ("off", "gpu" if accel == "cuda" else "all"):
            env = {
                "DRAGON_WORKER_POOLS": mode,
                "DRAGON_POOL_SLOTS": "1",
                "DRAGON_POOL_IDLE_SECONDS": "5",  # a member idle on the CPU must not hold the movie's CPU for long
                "DRAGON_BLOCK_TIMEOUT": "600",
            }
            with running_service(env) as service:
                http = httpx.Client(base_url=service.url, timeout=600)
                body = {
                    "secret": service.secret,
                    "block": True,
                    "tasks": {"task_name": "audio.beats", "url": f"{origin.url}/{clip.name}"},
                }
                took, results = [], []
                for _ in range(tasks):
                    started = time.perf_counter()
                    [status] = http.post("/v2/create", json=body).json()
                    took.append(time.perf_counter() - started)
                    results.append(status.get("result") or status.get("error"))
                member = bool(service.process.pids("ray::PoolMember"))
                movie, length = _segmented_movie(http, service.secret)
                runs[mode] = (statistics.median(took[1:]), results + [length], member, movie)
    finally:
        origin.close()
    (off, off_results, _, off_movie), (on, on_results, member, on_movie) = runs.values()
    problems = [] if member else ["no pool member ran"]
    if any(r != off_results[0] for r in off_results[:-1] + on_results[:-1]):
        problems.append("the beats differ")
    if off_results[-1] != on_results[-1]:
        problems.append("the movies differ in length")
    return Check(
        f"pools, audio.beats of {clip.name} ({tasks} tasks) and a 15 s movie in 3 segments, through the API",
        f"stateless {off:.3f} s/task, movie {off_movie:.1f} s",
        f"pooled {on:.3f} s/task, movie {on_movie:.1f} s",
        "ok" if not problems else "FAILED: " + "; ".join(problems),
    )


def _segmented_movie(http: httpx.Client, secret: str) -> tuple[float, float]:
    """Seconds a 15 s 360p movie of three colours (three 5 s segments) took through the
    API, and its export's duration."""
    colours = ["#c03030", "#30c030", "#3030c0"]
    sxml = "".join(f'<effect type="none" duration="5"><image color="{c}"/></effect>' for c in colours)
    task = {"task_name": "video.create", "definition": sxml, "profile": "360p", "antialias": 1}
    started = time.perf_counter()
    [status] = http.post("/v2/create", json={"secret": secret, "block": True, "tasks": task}).json()
    took = time.perf_counter() - started
    if status["status"] != "success":
        return took, -1.0
    with av.open(io.BytesIO(http.get(status["result"]["export"]).content), "r") as container:
        return took, round(float(container.duration or 0) / 1_000_000, 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--cpu-only", action="store_true", help="run only the CPU halves")
    parser.add_argument("--against", choices=("cuda", "cpu"), default="cuda", help="the second half's device")
    parser.add_argument("--quick", action="store_true", help="a 6 s movie with 2 photos")
    parser.add_argument("--antialias", type=int, default=1)
    parser.add_argument("--media", type=Path, default=ROOT.parent / "shared" / "media")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()  # before any CUDA_VISIBLE_DEVICES change
    accel = None if args.cpu_only or (args.against == "cuda" and not cuda) else args.against
    media = args.media if args.media.is_dir() else None
    torch.set_num_threads(max(1, (os.cpu_count() or 2) // 2))
    device_name = torch.cuda.get_device_name(0) if cuda else "none"
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, torch "
        f"{torch.__version__}, PyAV {av.__version__}; GPU: {device_name}; inputs: {media or 'generated'}; "
        f"second half on: {accel or 'nothing'}"
    )
    with tempfile.TemporaryDirectory(prefix="dragon-gpu-check-") as tmp:
        work = Path(tmp)
        steps: list[Callable[[], Check]] = [
            lambda: check_movie(
                movie_inputs(media, work, 2 if args.quick else 8),
                6.0 if args.quick else 30.0,
                args.antialias,
                accel,
                work,
            ),
            lambda: check_beats(beat_clips(media, work)[: 3 if args.quick else None], accel),
            lambda: check_nvdec(work, accel),
            lambda: check_pools(beat_clips(media, work)[0], accel),
        ]
        checks = []
        for step in steps:
            check = step()
            checks.append(check)
            print(f"{check.name}\n    cpu: {check.cpu}   {accel or 'cuda'}: {check.cuda}   {check.verdict}", flush=True)
    sys.exit(1 if any(c.verdict.startswith("FAILED") for c in checks) else 0)


def _pixels(path: Path) -> int:
    with Image.open(path) as image:
        return image.width * image.height


if __name__ == "__main__":
    main()
