"""Video tasks against the ffmpeg CLI, in one run, on the same generated 1080p source.

Makes a 30 s 1920x1080 H.264 + AAC source with PyAV, then times (best of 3):
  video.convert to 640x360 H.264 (crf 23, 3000k cap, gop 250, veryfast, AAC 128k)
      vs `ffmpeg -i src -vf scale=640:360 ... -movflags +faststart`
  video.thumb at 20 s     vs `ffmpeg -ss 20 -i src -frames:v 1`
  video.strip of 10 frames vs ten such ffmpeg calls
The task side runs the media code the task functions call (fetch and store left out).
With --gpu the encoder is h264_nvenc (needs an NVIDIA GPU); without ffmpeg on PATH only
Dragon's side is timed.

    python benchmarks/video.py [--gpu] [--seconds 30]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.timing import best  # noqa: E402
from dragon.media import images  # noqa: E402
from dragon.media.video import codecs, frames, transcode  # noqa: E402


def make_source(path: Path, seconds: int) -> None:
    out = av.open(str(path), "w")
    vs = out.add_stream("libx264", rate=30)
    vs.width, vs.height, vs.pix_fmt = 1920, 1080, "yuv420p"
    vs.codec_context.options = {"preset": "ultrafast", "crf": "20"}
    aus = out.add_stream("aac", rate=44100)
    aus.layout = "stereo"
    y, x = np.mgrid[0:1080, 0:1920]
    for i in range(seconds * 30):
        frame = np.stack([(x + 8 * i) % 256, (y + 4 * i) % 256, (x // 4 + y // 4 + i) % 256], axis=-1).astype(np.uint8)
        out.mux(vs.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
    samples = 1024
    t = np.arange(samples) / 44100
    for i in range(seconds * 44100 // samples):
        tone = (0.2 * np.sin(2 * np.pi * 440 * (t + i * samples / 44100))).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
        frame.sample_rate = 44100
        frame.pts, frame.time_base = i * samples, Fraction(1, 44100)
        out.mux(aus.encode(frame))
    out.mux(vs.encode(None))
    out.mux(aus.encode(None))
    out.close()



def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gpu", action="store_true", help="encode with h264_nvenc")
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--keep", type=Path, help="also save the generated source here")
    args = parser.parse_args()
    if args.gpu:
        os.environ.setdefault("CUDA_VISIBLE_DEVICES", "0")
    else:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    work = Path(tempfile.mkdtemp(prefix="dragon-bench-video-"))
    source = work / "source.mp4"
    make_source(source, args.seconds)
    if args.keep:
        shutil.copy(source, args.keep)
    ffmpeg = shutil.which("ffmpeg")
    enc = codecs.Encoding(640, 360, False)
    times = [i * 3.0 for i in range(10)]

    def ours_convert() -> None:
        transcode.convert(source, work / "ours.mp4", enc, lambda done: None)

    def ours_thumb() -> None:
        [frame] = frames.frames_at(source, [20.0])
        images.save(frame, work / "ours.jpg", "jpeg")

    def ours_strip() -> None:
        for frame in frames.frames_at(source, times):
            images.resize_to(frame, (192, 108), False)

    rows = [("convert 1080p -> 360p", best(ours_convert)), ("thumb at 20 s", best(ours_thumb)), ("strip of 10 frames", best(ours_strip))]
    refs: list[float | None] = [None, None, None]
    if ffmpeg:
        q = [ffmpeg, "-v", "error", "-y"]
        convert = [*q, "-i", str(source), "-vf", "scale=640:360", "-c:v", "libx264", "-preset", "veryfast", "-crf", "23",
                   "-maxrate", "3000k", "-bufsize", "6000k", "-g", "250", "-c:a", "aac", "-b:a", "128k", "-ar", "44100",
                   "-movflags", "+faststart", str(work / "ref.mp4")]
        refs[0] = best(lambda: subprocess.run(convert, check=True))
        refs[1] = best(lambda: subprocess.run([*q, "-ss", "20", "-i", str(source), "-frames:v", "1", str(work / "ref.jpg")], check=True))
        refs[2] = best(lambda: [subprocess.run([*q, "-ss", str(t), "-i", str(source), "-frames:v", "1", str(work / f"ref{i}.jpg")], check=True)
                                for i, t in enumerate(times)])
    encoder = codecs.h264_encoder(enc)
    with frames.open_video(source) as probe_container:
        decoder = frames.Decoder(probe_container, probe_container.streams.video[0]).name
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, PyAV {av.__version__}, "
          f"decoder {decoder}, encoder {encoder}, source {args.seconds} s 1080p30")
    print(f"{'measure':28} {'dragon s':>9} {'ffmpeg s':>9} {'ratio':>7}")
    for (name, ours), ref in zip(rows, refs):
        print(f"{name:28} {ours:9.3f} {ref if ref is not None else float('nan'):9.3f} {ours / ref if ref else float('nan'):7.2f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
