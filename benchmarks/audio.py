"""audio.waveform and audio.convert against the ffmpeg CLI, in one run.

Generates a 10-minute 44.1 kHz stereo MP3 (with ffmpeg), then times (best of 3) the
media code the task functions call against ffmpeg doing the same job, in wall time and
in CPU time (both processes' threads; it does not grow when other work shares the
cores, as it does on the shared dev machine):
  waveform 1024x60 PNG  vs  ffmpeg -filter_complex showwavespic=s=1024x60
  convert to AAC 160k   vs  ffmpeg -c:a aac -b:a 160k
  convert to MP3 192k   vs  ffmpeg -c:a libmp3lame -b:a 192k

    python benchmarks/audio.py
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.timing import best_with_cpu, load  # noqa: E402
from dragon.media import audio, images  # noqa: E402


def main() -> None:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        sys.exit("ffmpeg is needed as the reference (apt-get install ffmpeg)")
    work = Path(tempfile.mkdtemp(prefix="dragon-bench-audio-"))
    source = work / "ten-minutes.mp3"
    q = [ffmpeg, "-v", "error", "-y"]
    subprocess.run(
        [
            *q,
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=220:duration=600:sample_rate=44100",
            "-f",
            "lavfi",
            "-i",
            "anoisesrc=duration=600:amplitude=0.2:sample_rate=44100",
            "-filter_complex",
            "[0][1]amerge=inputs=2",
            "-c:a",
            "libmp3lame",
            "-b:a",
            "192k",
            str(source),
        ],
        check=True,
    )

    def ours_waveform() -> None:
        levels, _ = audio.peaks(source, 1024, 0.0, None)
        images.save(audio.waveform_image(levels, 60, 0, "#000000", "#FFFFFF"), work / "ours.png", "png")

    def ours(codec: str) -> None:
        audio.convert(source, work / f"ours.{audio.TARGETS[codec][2]}", codec, True, lambda done: None)

    rows = [
        (
            "waveform 1024x60",
            best_with_cpu(ours_waveform),
            best_with_cpu(
                lambda: subprocess.run(
                    [
                        *q,
                        "-i",
                        str(source),
                        "-filter_complex",
                        "showwavespic=s=1024x60",
                        "-frames:v",
                        "1",
                        str(work / "ref.png"),
                    ],
                    check=True,
                )
            ),
        ),
        (
            "convert to aac 160k",
            best_with_cpu(lambda: ours("aac")),
            best_with_cpu(
                lambda: subprocess.run(
                    [
                        *q,
                        "-i",
                        str(source),
                        "-c:a",
                        "aac",
                        "-b:a",
                        "160k",
                        "-movflags",
                        "+faststart",
                        str(work / "ref.m4a"),
                    ],
                    check=True,
                )
            ),
        ),
        (
            "convert to mp3 192k",
            best_with_cpu(lambda: ours("mp3")),
            best_with_cpu(
                lambda: subprocess.run(
                    [*q, "-i", str(source), "-c:a", "libmp3lame", "-b:a", "192k", str(work / "ref.mp3")], check=True
                )
            ),
        ),
    ]
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {load()}; "
        "source: 10 min stereo MP3"
    )
    print(
        f"{'measure':24} {'dragon s':>9} {'ffmpeg s':>9} {'ratio':>7} {'dragon cpu':>11} {'ffmpeg cpu':>11} {'cpu ratio':>9}"
    )
    for name, (mine, mine_cpu), (ref, ref_cpu) in rows:
        print(
            f"{name:24} {mine:9.3f} {ref:9.3f} {mine / ref:7.2f} {mine_cpu:11.3f} {ref_cpu:11.3f} {mine_cpu / ref_cpu:9.2f}"
        )
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
