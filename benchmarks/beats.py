"""audio.beats against librosa's beat tracker, scored with mir_eval, in one run.

For every labelled clip in ../shared/media/audio_beats (generated clips with exact labels,
real clips with the "silver" labels of madmom's beat tracker, the GuitarSet excerpt), runs Dragon's tracker
(decode included, torch limited to one thread) and librosa.beat.beat_track, and prints
mir_eval's beat F-measure (±70 ms) for both, Dragon's downbeat F-measure, and Dragon's
speed in multiples of real time. librosa and mir_eval are benchmark-only dependencies:

    pip install librosa mir_eval && python benchmarks/beats.py
"""

from __future__ import annotations

import os
import platform
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from dragon.media import beats  # noqa: E402

MEDIA = Path(os.environ.get("DRAGON_TEST_MEDIA") or ROOT.parent / "shared" / "media") / "audio_beats"
AUDIO = (".flac", ".mp3", ".ogg", ".m4a", ".wav")


def clips() -> list[tuple[str, str, Path, Path]]:
    """(group, name, audio, labels) for every clip with a label file."""
    found = []
    for path in sorted(MEDIA.rglob("*")):
        if path.suffix not in AUDIO:
            continue
        stem = path.name.split(".")[0]
        group = "generated" if path.parent.name == "synthetic" else "real"
        candidates = [
            path.parent / f"{stem}.beats",
            path.parent / f"{stem}.silver_madmom_beatsonly.beats",
            path.parent / f"{stem.removesuffix('_mic')}_first2s.beats",
        ]
        labels = next((c for c in candidates if c.exists()), None)
        if path.parent.name == "synthetic" and labels is None:
            labels = path.with_suffix(".json")  # the no-beat noise clip: labels in its JSON
        if labels is not None:
            found.append((group, path.name, path, labels))
    return found


def read_labels(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    """Beat times and downbeat times (None where the labels carry no reliable bar positions)."""
    if path.suffix == ".json":
        import json

        data = json.loads(path.read_text())
        return np.array(data["beats"], dtype=float), np.array(data["downbeats"], dtype=float)
    rows = [line.split() for line in path.read_text().splitlines() if line and not line.startswith("#")]
    times = np.array([float(r[0]) for r in rows])
    positions = [int(float(r[1])) if len(r) > 1 else 0 for r in rows]
    downbeats = np.array([t for t, p in zip(times, positions) if p == 1])
    silver = "silver" in path.name or "first2s" in path.name
    return times, (None if silver else downbeats)


def f_measure(reference: np.ndarray, estimated: np.ndarray) -> float:
    import mir_eval

    if reference.size == 0:  # no beats to find: right when none is reported
        return 1.0 if len(estimated) == 0 else 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(mir_eval.beat.f_measure(reference, np.asarray(estimated, dtype=float)))


def librosa_beats(path: Path) -> np.ndarray:
    import librosa

    y, sr = librosa.load(str(path), sr=22050, mono=True)
    _, frames = librosa.beat.beat_track(y=y, sr=sr)
    return librosa.frames_to_time(frames, sr=sr)


def main() -> None:
    torch.set_num_threads(1)
    rows = []
    total_audio = total_time = 0.0
    beats.analyse(clips()[0][2])  # warm-up: library loading is not per-task work
    for group, name, path, labels in clips():
        reference, reference_downbeats = read_labels(path.parent / labels.name)
        started = time.perf_counter()
        found = beats.analyse(path)
        elapsed = time.perf_counter() - started
        total_audio, total_time = total_audio + found.duration, total_time + elapsed
        theirs = librosa_beats(path)
        down = f_measure(reference_downbeats, found.downbeats) if reference_downbeats is not None else None
        rows.append(
            (
                group,
                name,
                f_measure(reference, found.beats),
                down,
                f_measure(reference, theirs),
                found.duration / elapsed,
            )
        )
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, torch threads 1")
    print(f"{'clip':58} {'beat F':>7} {'down F':>7} {'librosa':>8} {'x realtime':>10}")
    for group, name, ours, down, theirs, speed in rows:
        shown = "-" if down is None else f"{down:.3f}"
        print(f"{group[:4]} {name[:53]:53} {ours:7.3f} {shown:>7} {theirs:8.3f} {speed:10.0f}")
    for group in ("generated", "real"):
        chosen = [r for r in rows if r[0] == group]
        downs = [r[3] for r in chosen if r[3] is not None]
        print(
            f"mean {group:9}: beat F {np.mean([r[2] for r in chosen]):.3f}, librosa {np.mean([r[4] for r in chosen]):.3f}"
            + (f", downbeat F {np.mean(downs):.3f}" if downs else "")
            + f", slowest {min(r[5] for r in chosen):.0f}x real time"
        )
    print(f"speed over all clips: {total_audio / total_time:.0f}x real time")


if __name__ == "__main__":
    main()
