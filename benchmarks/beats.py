"""audio.beats against librosa's beat tracker, scored with mir_eval, in one run.

Three reports, each separate:

- held-out generated clips: the seeds of ``HELD_OUT`` (tools/beat_clips), which no
  training or tuning run uses; exact labels; means per style and overall;
- the project's older generated clips in ../shared/media/audio_beats/synthetic (another
  generator, exact labels);
- real clips in ../shared/media/audio_beats, against the "silver" labels of madmom's
  beat tracker (and the GuitarSet excerpt's human ones): beat F only.

For each clip, Dragon's tracker reads the file (decode included, torch on one thread) and
librosa.beat.beat_track gets the same samples, decoded beforehand, each with its
numerical libraries on one thread; mir_eval's beat F-measure (±70 ms, no trimming) for
both, and beside it mir_eval's AMLt (any metrical level: beats twice or half as fast as
the labels, or on their offbeats, count as right), which tells beats off the music from
beats at another level than the labels chose; Dragon's downbeat F-measure; the median
offset of Dragon's beats from the labels they hit (negative: early); and the speed
of both in multiples of real time per CPU core: audio seconds over the CPU seconds the process spent, which other work on a
shared machine does not inflate as it does the wall clock. librosa and mir_eval are
benchmark-only dependencies (the ``bench`` extra):

    pip install -e '.[bench]' && python benchmarks/beats.py [--development] [--limit N]

``--madmom PYTHON`` adds madmom's downbeat tracker (RNN and DBN, bars of 3 or 4), the
trained tracker issue 21 measures against, run by PYTHON, an interpreter of a separate
environment that benchmarks/madmom_env.sh builds: its beat and downbeat F-measure and its
speed on the same clips, decoded by Dragon's decoder to the 44.1 kHz its models expect.
It runs in its own process beside Dragon and librosa, on the other core; each tracker's
speed is its own process's CPU time. On the real clips its beats are scored against the
labels of madmom's other model, its beat tracker.

``--development`` runs the same report on development seeds instead, the ones to look at
while changing the tracker.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
for _pool in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    # One core for both trackers: a thread pool that librosa's numerical libraries leave
    # spinning after each call would count against the next clip's CPU time.
    os.environ.setdefault(_pool, "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from dragon.media import audio, beats  # noqa: E402
from tools.beat_clips import DEVELOPMENT, STYLES, f_measure, generate, offsets  # noqa: E402

HELD_OUT = range(900_000, 900_150)  # 15 clips per style; never used to train or tune
MEDIA = Path(os.environ.get("DRAGON_TEST_MEDIA") or ROOT.parent / "shared" / "media") / "audio_beats"
AUDIO = (".flac", ".mp3", ".ogg", ".m4a", ".wav")
LIBROSA_RATE = 22050


@dataclass
class Row:
    group: str
    name: str
    beat_f: float
    downbeat_f: float | None  # None where the labels carry no reliable bar positions
    librosa_f: float
    any_level: float  # mir_eval's AMLt: beat accuracy at any metrical level
    librosa_any_level: float
    speed: float  # x real time on one core
    librosa_speed: float
    duration: float
    offsets: np.ndarray  # s: Dragon's beats that hit a label, minus that label
    madmom_f: float | None = None
    madmom_downbeat_f: float | None = None
    madmom_speed: float | None = None


class Madmom:
    """madmom's downbeat tracker in a process of its own (benchmarks/madmom_tracker.py):
    a clip is handed over before Dragon and librosa measure it and its answer read after,
    so madmom works on the other core meanwhile."""

    RATE = 44100

    def __init__(self, python: str) -> None:
        self.process = subprocess.Popen(
            [python, str(ROOT / "benchmarks" / "madmom_tracker.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},  # numpy deprecations, once per clip
        )
        json.loads(self.process.stdout.readline())  # the models are loaded
        self.folder = tempfile.TemporaryDirectory()
        self.count = 0

    def submit(self, path: Path) -> None:
        self.count += 1
        wav = Path(self.folder.name) / f"{self.count}.wav"
        audio.write_wav(wav, decoded(path, self.RATE), self.RATE)
        self.process.stdin.write(f"{wav}\n")
        self.process.stdin.flush()

    def result(self, row: Row, reference: np.ndarray, downbeats: np.ndarray | None) -> Row:
        answer = json.loads(self.process.stdout.readline())
        row.madmom_f = f_measure(reference, np.array(answer["beats"]))
        row.madmom_downbeat_f = f_measure(downbeats, np.array(answer["downbeats"])) if downbeats is not None else None
        row.madmom_speed = row.duration / max(answer["cpu"], 1e-6)
        return row

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()
        self.folder.cleanup()


def decoded(path: Path, rate: int) -> np.ndarray:
    """The samples Dragon's decoder gives, mono at ``rate``, for the other trackers (which
    cannot read every container here); one silent sample for a file without any."""
    return np.concatenate(list(audio.mono(path, rate)) or [np.zeros(1, np.float32)])


def librosa_beats(path: Path) -> tuple[np.ndarray, float]:
    """librosa's beats on the samples Dragon's decoder gives, and the CPU seconds its
    tracker took (decode not included)."""
    import librosa

    y = decoded(path, LIBROSA_RATE)
    started = time.process_time()
    _, frames = librosa.beat.beat_track(y=y, sr=LIBROSA_RATE)
    return librosa.frames_to_time(frames, sr=LIBROSA_RATE), time.process_time() - started


def measure(
    group: str, name: str, path: Path, reference: np.ndarray, downbeats: np.ndarray | None, madmom: Madmom | None
) -> Row:
    if madmom is not None:
        madmom.submit(path)
    started = time.process_time()
    found = beats.analyse(path)
    elapsed = time.process_time() - started
    theirs, their_time = librosa_beats(path)
    down = f_measure(downbeats, found.downbeats) if downbeats is not None else None
    row = Row(
        group,
        name,
        f_measure(reference, found.beats),
        down,
        f_measure(reference, theirs),
        any_level(reference, found.beats),
        any_level(reference, theirs),
        found.duration / max(elapsed, 1e-6),
        found.duration / max(their_time, 1e-6),
        found.duration,
        offsets(reference, found.beats),
    )
    return madmom.result(row, reference, downbeats) if madmom is not None else row


def any_level(reference: np.ndarray, estimated: np.ndarray | list[float]) -> float:
    """mir_eval's AMLt: the share of beats right at any metrical level (twice, half as
    fast, or on the offbeat). Like the F-measure, a clip without beats is right only when
    none are found; two beats are the fewest it judges."""
    import mir_eval

    if len(reference) == 0:
        return 1.0 if len(estimated) == 0 else 0.0
    if len(reference) < 2 or len(estimated) < 2:
        return 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it warns about beats before 5 s, which it keeps
        return float(mir_eval.beat.continuity(np.asarray(reference, float), np.asarray(estimated, float))[3])


def generated(seeds: range, folder: Path, madmom: Madmom | None) -> list[Row]:
    rows = []
    for seed in seeds:
        clip = generate(seed)
        path = folder / f"{seed}.flac"
        path.write_bytes(clip.flac())
        rows.append(measure(clip.style, f"{seed} {clip.notes}", path, clip.beats, clip.downbeats, madmom))
    return rows


def shared_clips() -> list[tuple[str, Path, Path]]:
    """(group, audio, labels) for every labelled clip of ../shared/media/audio_beats."""
    found = []
    for path in sorted(MEDIA.rglob("*")):
        if path.suffix not in AUDIO:
            continue
        stem = path.name.split(".")[0]
        group = "shared generated" if path.parent.name == "synthetic" else "real"
        candidates = [
            path.parent / f"{stem}.json",
            path.parent / f"{stem}.silver_madmom_beatsonly.beats",
            path.parent / f"{stem.removesuffix('_mic')}_first2s.beats",
        ]
        labels = next((c for c in candidates if c.exists()), None)
        if labels is not None:
            found.append((group, path, labels))
    return found


def read_labels(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Beat times, and downbeat times where the labels are exact (the generated clips')."""
    if path.suffix == ".json":
        data = json.loads(path.read_text())
        return np.array(data["beats"], dtype=float), np.array(data["downbeats"], dtype=float)
    rows = [line.split() for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return np.array([float(r[0]) for r in rows]), None


def speed(rows: list[Row], field: str) -> float:
    """Audio seconds over processing seconds, over all of ``rows``."""
    return sum(r.duration for r in rows) / sum(r.duration / getattr(r, field) for r in rows)


def median_offset(rows: list[Row]) -> float:
    """In ms, over every hit of ``rows``: how early (negative) or late Dragon's beats fall."""
    hits = np.concatenate([r.offsets for r in rows])
    return 1000 * float(np.median(hits)) if hits.size else float("nan")


def report(title: str, rows: list[Row], by_style: bool) -> None:
    print(f"\n{title}: {len(rows)} clips, {sum(r.duration for r in rows) / 60:.1f} min")
    print(
        f"{'':44} {'beat F':>7} {'down F':>7} {'librosa':>8} {'AMLt':>6} {'librosa':>8} "
        f"{'x real time (slowest)':>22} {'librosa':>8} {'offset ms':>9}"
        + (f" {'madmom F':>8} {'down F':>7} {'x real time':>11}" if rows[0].madmom_f is not None else "")
    )
    groups = sorted({r.group for r in rows}, key=lambda g: STYLES.index(g) if g in STYLES else 99) if by_style else []
    lines = [(g, [r for r in rows if r.group == g]) for g in groups] if by_style else [(r.name, [r]) for r in rows]
    for label, chosen in lines + [("mean", rows)]:
        downs = [r.downbeat_f for r in chosen if r.downbeat_f is not None]
        down = f"{np.mean(downs):7.3f}" if downs else f"{'-':>7}"
        slowest = min(r.speed for r in chosen)
        print(
            f"{label[:44]:44} {np.mean([r.beat_f for r in chosen]):7.3f} {down} "
            f"{np.mean([r.librosa_f for r in chosen]):8.3f} {np.mean([r.any_level for r in chosen]):6.3f} "
            f"{np.mean([r.librosa_any_level for r in chosen]):8.3f} {speed(chosen, 'speed'):12.0f} ({slowest:7.0f}) "
            f"{speed(chosen, 'librosa_speed'):8.0f} {median_offset(chosen):9.1f}"
            + (madmom_columns(chosen) if chosen[0].madmom_f is not None else "")
        )


def madmom_columns(rows: list[Row]) -> str:
    downs = [r.madmom_downbeat_f for r in rows if r.madmom_downbeat_f is not None]
    down = f"{np.mean(downs):7.3f}" if downs else f"{'-':>7}"
    return f" {np.mean([r.madmom_f for r in rows]):8.3f} {down} {speed(rows, 'madmom_speed'):11.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--development", action="store_true", help="development seeds instead of the held-out ones")
    parser.add_argument("--limit", type=int, help="only the first N generated clips")
    parser.add_argument("--verbose", action="store_true", help="a line per generated clip")
    parser.add_argument("--madmom", metavar="PYTHON", help="madmom's tracker beside them, run by this interpreter")
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = DEVELOPMENT if args.development else HELD_OUT
    seeds = seeds[: args.limit or len(HELD_OUT)]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, torch {torch.__version__} on 1 thread"
    )
    shared = shared_clips()
    beats.analyse(shared[0][1])  # warm-up: loading libraries is not per-task work
    madmom = Madmom(args.madmom) if args.madmom else None
    with tempfile.TemporaryDirectory() as folder:
        ours = generated(seeds, Path(folder), madmom)
    others = [measure(group, path.name, path, *read_labels(labels), madmom) for group, path, labels in shared]
    if madmom is not None:
        madmom.close()
    title = "development" if args.development else "held-out"
    if args.verbose:
        report(f"{title} generated clips, one by one", ours, by_style=False)
    report(f"{title} generated clips (seeds {seeds.start}-{seeds.stop - 1}), per style", ours, by_style=True)
    report(
        "shared generated clips (../shared/media/audio_beats/synthetic)",
        [r for r in others if r.group != "real"],
        by_style=False,
    )
    report(
        "real clips (madmom's silver labels; GuitarSet: human)",
        [r for r in others if r.group == "real"],
        by_style=False,
    )
    every = ours + others
    styles = {
        s: np.mean([r.downbeat_f for r in ours if r.group == s]) for s in STYLES if any(r.group == s for r in ours)
    }
    print(
        f"\ngoals ({title}): beat F {np.mean([r.beat_f for r in ours]):.3f} (>= 0.97), downbeat F "
        f"{np.mean([r.downbeat_f for r in ours]):.3f} (>= 0.93), worst style downbeat F "
        f"{min(styles.values()):.3f} {min(styles, key=styles.get)} (>= 0.85); real beat F "
        f"{np.mean([r.beat_f for r in others if r.group == 'real']):.3f} (>= 0.85); speed "
        f"{speed(every, 'speed'):.0f}x real time on one core over all clips (librosa {speed(every, 'librosa_speed'):.0f}x), "
        f"slowest clip {min(r.speed for r in every):.0f}x (>= 100x)"
    )
    if madmom is not None:
        theirs = {s: np.mean([r.madmom_downbeat_f for r in ours if r.group == s]) for s in styles}
        print(
            f"madmom's downbeat tracker on the same clips: beat F {np.mean([r.madmom_f for r in ours]):.3f}, "
            f"downbeat F {np.mean([r.madmom_downbeat_f for r in ours]):.3f}, worst style downbeat F "
            f"{min(theirs.values()):.3f} {min(theirs, key=theirs.get)}; real beat F "
            f"{np.mean([r.madmom_f for r in others if r.group == 'real']):.3f}; "
            f"{speed(every, 'madmom_speed'):.0f}x real time on one core over all clips"
        )


if __name__ == "__main__":
    main()
