"""video.create's memory against the length and size of its inputs, in one run: the
peak resident memory (VmHWM) of the process that mixes and encodes a soundtrack, for a
short movie and one of the 3-hour cap; and of the processes that render a short movie
from a large input video (the task's and every segment worker's), for a small input and
a 2 GB one, with the segments on the task's node (they read its files) and on another
node (they copy the input a chunk at a time). Each figure is measured in a fresh
process, so that nothing measured before counts. The goal: all stay under the task's
memory request and none grows with the length or the size.

The input videos are made at run time in a temporary directory: lossless H.264 of
noise (every frame a keyframe, so it does not compress) with a PCM sound track.

    python benchmarks/movie_memory.py            # 20 min against 3 h; 200 MB against 2 GB
    python benchmarks/movie_memory.py --quick    # 1 min against 10 min; 50 MB against 200 MB
    python benchmarks/movie_memory.py --only soundtrack   # or --only render
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("OMP_NUM_THREADS", "1")

MUSIC = ROOT.parent / "shared" / "media" / "audio_beats" / "librosa_data" / "Kevin_MacLeod_-_Vibe_Ace.ogg"
TASK_MEMORY_MB = 2048  # video.create's memory request (dragon/tasks/movie.py)
CLIP_SECONDS = 10.0  # the short movie cut from the large input
SIZE = (1280, 720)


def soundtrack_movie(seconds: float) -> str:
    """``seconds`` of black under music looped from start to end, faded, with a louder
    master track that ducks it for a minute."""
    return (
        '<movie service="craftsman-1.0"><body><stack>'
        f'<effect type="none" duration="{seconds}"><image color="#000000"/></effect>'
        '<audio filename="music" duration=".." loop="true" fadein="2" fadeout="2"/>'
        '<audio filename="music" margin-start="30" duck-others="0.3"/>'
        "</stack></body></movie>"
    )


def clip_movie(skip: float) -> str:
    """A short movie showing the large video from ``skip``, with its sound, under a title."""
    return (
        '<movie service="craftsman-1.0"><body><stack>'
        f'<effect type="none"><video filename="big" skip="{skip}" duration="{CLIP_SECONDS}"/></effect>'
        '<text type="legend">A clip from a large file</text>'
        "</stack></body></movie>"
    )


def make_video(path: Path, size_bytes: int) -> float:
    """A Matroska file of about ``size_bytes``: a second of lossless noise at SIZE, its
    packets repeated, with a 440 Hz tone; returns its duration in seconds."""
    import av
    import numpy as np

    rate = 25
    with av.open(str(path), "w", format="matroska") as out:
        video = out.add_stream("libx264", rate=rate)
        video.width, video.height, video.pix_fmt = *SIZE, "yuv420p"
        video.codec_context.options = {"qp": "0", "preset": "ultrafast", "x264-params": "keyint=1"}
        sound = out.add_stream("pcm_s16le", rate=44100)
        sound.layout = "stereo"
        noise = np.random.default_rng(7)
        packets = []
        for i in range(rate):
            frame = av.VideoFrame.from_ndarray(noise.integers(0, 256, (SIZE[1], SIZE[0], 3), np.uint8), format="rgb24")
            frame.pts = i
            packets += video.encode(frame)
        packets += video.encode(None)
        per_frame = 44100 // rate
        tone = (np.sin(2 * np.pi * 440 * np.arange(per_frame) / 44100) * 8000).astype(np.int16)
        written, index = 0, 0
        while written < size_bytes:
            packet = packets[index % len(packets)]
            packet.pts = packet.dts = index
            packet.time_base = Fraction(1, rate)
            out.mux(packet)
            written += packet.size
            chunk = av.AudioFrame.from_ndarray(
                np.stack([tone, tone], axis=1).reshape(1, -1), format="s16", layout="stereo"
            )
            chunk.sample_rate, chunk.pts, chunk.time_base = 44100, index * per_frame, Fraction(1, 44100)
            out.mux(sound.encode(chunk))
            index += 1
        out.mux(sound.encode(None))
    return index / rate


def peak_mb(pid: int | str = "self") -> float:
    """The peak resident memory of a process so far, in MB."""
    return status_mb(pid, "VmHWM")


def status_mb(pid: int | str, field: str) -> float:
    """A memory field of /proc/PID/status, in MB (0 for a process that is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class Peaks:
    """The largest private (anonymous) and shared-memory resident sizes any of some
    processes reaches, sampled every 20 ms. Resident memory also counts the pages of
    Ray's object store that a process maps (shared memory, which the store reserves
    whatever the processes do) and the libraries' code."""

    def __init__(self, pids: Callable[[], list[int]]):
        self.pids, self.private, self.shared = pids, 0.0, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            pids = self.pids()
            self.private = max([self.private, *(status_mb(pid, "RssAnon") for pid in pids)])
            self.shared = max([self.shared, *(status_mb(pid, "RssShmem") for pid in pids)])

    def stop(self) -> tuple[float, float]:
        self._stop.set()
        self._thread.join()
        return self.private, self.shared


def workers_of(root: int) -> list[int]:
    """Ray worker processes (titled ``ray::...``) among the descendants of ``root``."""
    parents: dict[int, int] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                parents[int(proc.name)] = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
    below, found = {root}, []
    for _ in range(6):  # a few generations: driver -> raylet -> worker
        below |= {pid for pid, parent in parents.items() if parent in below}
    for pid in below - {root}:
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"ray::"):
                found.append(pid)
        except OSError:
            continue
    return found


# -- the measured runs, each in its own process ------------------------------------------------


def measure_soundtrack(seconds: float, work: Path) -> dict:
    from dragon.media import audio
    from dragon.movie.render import Job, Movie

    movie = Movie(Job(soundtrack_movie(seconds), "360p", 1, {"music": audio.probe(MUSIC).duration}), {"music": MUSIC})
    before = peak_mb()
    started = time.perf_counter()
    encoded = movie.encoded_soundtrack(work / "sound.nut")
    assert encoded is not None
    return {"baseline_mb": before, "peak_mb": peak_mb(), "seconds": time.perf_counter() - started}


def measure_render(video_path: Path, skip: float, work: Path, nodes: int) -> dict:
    import ray

    from dragon.media.video.probe import probe as probe_video
    from dragon.movie.production import Production, RenderSettings
    from dragon.movie.render import Job

    cluster = None
    if nodes == 1:
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        workers = lambda: workers_of(os.getpid())  # noqa: E731
    else:  # the task on a head node without CPUs, the segments on a worker node
        from tests.support.cluster import LocalCluster

        cluster = LocalCluster(work, {**os.environ, "PYTHONPATH": str(ROOT)}, head_cpus=0)
        cluster.add_node("render", cpus=2)
        ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
        workers = lambda: [pid for pid, _ in cluster.processes("ray::")]  # noqa: E731
    try:
        job = Job(clip_movie(skip), "360p", 1, {"big": probe_video(video_path).duration})
        files = {"big": video_path}
        settings = RenderSettings(scratch_root=work, segment_seconds=CLIP_SECONDS / 2, parallel=2)
        production = Production(job, files, settings, lambda percent: None, preview=False, export=True)
        before = peak_mb()
        peaks = Peaks(workers)
        started = time.perf_counter()
        out = production.export(work)
        wall = time.perf_counter() - started
        production.close()
        assert abs(probe_video(out).duration - CLIP_SECONDS) < 0.1
        worker_peaks = [peak_mb(pid) for pid in workers()]
        private, shared = peaks.stop()
        return {
            "baseline_mb": before,
            "peak_mb": peak_mb(),
            "workers_peak_mb": max(worker_peaks, default=0.0),
            "workers_private_mb": private,
            "workers_shared_mb": shared,
            "workers": len(worker_peaks),
            "seconds": wall,
        }
    finally:
        ray.shutdown()
        if cluster is not None:
            cluster.close()


def run(*args: str) -> dict:
    """One measurement in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, __file__, "--measure", *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    if "--measure" in sys.argv:
        kind, *rest = sys.argv[sys.argv.index("--measure") + 1 :]
        work = Path(rest[-1])
        result = (
            measure_soundtrack(float(rest[0]), work)
            if kind == "soundtrack"
            else measure_render(Path(rest[0]), float(rest[1]), work, int(rest[2]))
        )
        print(json.dumps(result))
        return
    quick = "--quick" in sys.argv
    only = sys.argv[sys.argv.index("--only") + 1] if "--only" in sys.argv else None
    lengths = (60.0, 600.0) if quick else (1200.0, 3 * 3600.0)
    sizes = (50 * 10**6, 200 * 10**6) if quick else (200 * 10**6, 2 * 10**9)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}; "
        f"task memory request {TASK_MEMORY_MB} MB; peak resident memory (VmHWM), after imports in brackets"
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for seconds in lengths if only in (None, "soundtrack") else ():
            into = work / f"sound-{seconds:.0f}"
            into.mkdir()
            r = run("soundtrack", str(seconds), str(into))
            print(
                f"soundtrack of {seconds / 60:5.0f} min (mix + encode)      peak {r['peak_mb']:6.0f} MB "
                f"(imports {r['baseline_mb']:.0f} MB)  {r['seconds']:6.1f} s"
            )
        for size in sizes if only in (None, "render") else ():
            path = work / f"input-{size}.mkv"
            started = time.perf_counter()
            duration = make_video(path, size)
            print(
                f"input video: {path.stat().st_size / 1e6:.0f} MB, {duration:.0f} s at {SIZE[0]}x{SIZE[1]}, "
                f"made in {time.perf_counter() - started:.0f} s"
            )
            for nodes in (1, 2):
                into = work / f"render-{size}-{nodes}"
                into.mkdir()
                r = run("render", str(path), str(duration / 2), str(nodes), str(into))
                where = "same node" if nodes == 1 else "other node"
                print(
                    f"  {CLIP_SECONDS:.0f} s clip, segments on the {where:10s} task peak {r['peak_mb']:5.0f} MB "
                    f"(imports {r['baseline_mb']:.0f} MB), worst of {r['workers']} workers {r['workers_peak_mb']:5.0f} MB "
                    f"(private {r['workers_private_mb']:.0f}, object store {r['workers_shared_mb']:.0f})  "
                    f"{r['seconds']:5.1f} s"
                )
            path.unlink()


if __name__ == "__main__":
    main()
