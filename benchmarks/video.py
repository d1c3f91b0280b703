"""Video tasks against the ffmpeg CLI, in one run, on the same generated 1080p source.

Makes a 30 s 1920x1080 H.264 + AAC source with PyAV, then times (best of 3):
  video.convert to 640x360 H.264 (crf 23, 3000k cap, gop 250, veryfast, AAC 128k)
      vs `ffmpeg -i src -vf scale=640:360 ... -movflags +faststart`
  video.thumb at 20 s     vs `ffmpeg -ss 20 -i src -frames:v 1`
  video.strip of 10 frames vs ten such ffmpeg calls
  video.thumb at 20 s of a remote 1 GB MP4 (the source repeated, index at the end) served
      with byte ranges on loopback: what video.thumb does (probe, then the frame, read by
      range through the safe fetcher) vs `ffmpeg -ss 20 -i http://... -frames:v 1`,
      which also reads by range; both print the share of the file the origin sent
The task side runs the media code the task functions call (fetch and store left out).
With --gpu the encoder is h264_nvenc (needs an NVIDIA GPU); without ffmpeg on PATH only
Dragon's side is timed.

    python benchmarks/video.py [--gpu] [--seconds 30] [--remote-gb 1]
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

from benchmarks.timing import best, load  # noqa: E402
from dragon.config import Settings  # noqa: E402
from dragon.media import images  # noqa: E402
from dragon.media.video import codecs, frames, transcode  # noqa: E402
from dragon.media.video.probe import probe  # noqa: E402
from dragon.storage.fetch import Fetcher  # noqa: E402


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
    parser.add_argument("--remote-gb", type=float, default=1.0, help="size of the remote file (0: skip that row)")
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

    rows = [
        ("convert 1080p -> 360p", best(ours_convert)),
        ("thumb at 20 s", best(ours_thumb)),
        ("strip of 10 frames", best(ours_strip)),
    ]
    refs: list[float | None] = [None, None, None]
    if ffmpeg:
        q = [ffmpeg, "-v", "error", "-y"]
        convert = [
            *q,
            "-i",
            str(source),
            "-vf",
            "scale=640:360",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-crf",
            "23",
            "-maxrate",
            "3000k",
            "-bufsize",
            "6000k",
            "-g",
            "250",
            "-c:a",
            "aac",
            "-b:a",
            "128k",
            "-ar",
            "44100",
            "-movflags",
            "+faststart",
            str(work / "ref.mp4"),
        ]
        refs[0] = best(lambda: subprocess.run(convert, check=True))
        refs[1] = best(
            lambda: subprocess.run(
                [*q, "-ss", "20", "-i", str(source), "-frames:v", "1", str(work / "ref.jpg")], check=True
            )
        )
        refs[2] = best(
            lambda: [
                subprocess.run(
                    [*q, "-ss", str(t), "-i", str(source), "-frames:v", "1", str(work / f"ref{i}.jpg")], check=True
                )
                for i, t in enumerate(times)
            ]
        )
    encoder = codecs.h264_encoder(enc)
    with frames.open_video(source) as probe_container:
        decoder = frames.Decoder(probe_container, probe_container.streams.video[0]).name
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, PyAV {av.__version__}, "
        f"decoder {decoder}, encoder {encoder}, source {args.seconds} s 1080p30, {load()}"
    )
    print(f"{'measure':28} {'dragon s':>9} {'ffmpeg s':>9} {'ratio':>7}")
    for (name, ours), ref in zip(rows, refs):
        print(
            f"{name:28} {ours:9.3f} {ref if ref is not None else float('nan'):9.3f} {ours / ref if ref else float('nan'):7.2f}"
        )
    if args.remote_gb:
        remote_thumb(work, source, args.remote_gb, ffmpeg)
    shutil.rmtree(work, ignore_errors=True)


def repeat(source: Path, dest: Path, size: float) -> None:
    """``source`` played again and again (packets copied, times shifted) until ``dest``
    holds ``size`` bytes; the index goes at the end, as most writers leave it."""
    with av.open(str(source)) as inp, av.open(str(dest), "w", format="mp4") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams if s.type in ("video", "audio")}
        length = {s.index: s.duration for s in inp.streams if s.index in streams}
        round_ = 0
        while dest.stat().st_size < size if dest.exists() else True:
            inp.seek(0)
            for packet in inp.demux(*inp.streams):
                if packet.dts is None or packet.stream.index not in streams:
                    continue
                shift = round_ * length[packet.stream.index]
                packet.pts, packet.dts = packet.pts + shift, packet.dts + shift
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
            round_ += 1


def remote_thumb(work: Path, source: Path, gigabytes: float, ffmpeg: str | None) -> None:
    from tests.support.servers import Origin  # here: the test servers' module needs boto3 and psycopg too

    big = work / "remote" / "big.mp4"
    big.parent.mkdir()
    repeat(source, big, gigabytes * 1e9)
    size = big.stat().st_size
    origin = Origin(big.parent)
    url = f"{origin.url}/big.mp4"
    fetcher = Fetcher(Settings(allow_private_urls=True))

    def ours() -> None:
        remote = fetcher.open(url)
        assert remote is not None, "the origin should answer ranges"
        with remote:
            info = probe(remote)
            [frame] = frames.frames_at(remote, [min(20.0, info.duration)])
            images.save(frame, work / "remote.jpg", "jpeg")

    def read_share(run: object) -> tuple[float, float]:
        timed = best(run)  # type: ignore[arg-type]
        origin.served.clear()
        run()  # type: ignore[operator]
        return timed, origin.served.get("/big.mp4", 0) / size

    try:
        mine, mine_share = read_share(ours)
        ref, ref_share = (float("nan"), float("nan"))
        if ffmpeg:
            command = [
                ffmpeg,
                "-v",
                "error",
                "-y",
                "-ss",
                "20",
                "-i",
                url,
                "-frames:v",
                "1",
                str(work / "ref-remote.jpg"),
            ]
            ref, ref_share = read_share(lambda: subprocess.run(command, check=True))
    finally:
        origin.close()
    print(
        f"remote thumb at 20 s of a {size / 1e9:.2f} GB MP4 over loopback, ranges: dragon {mine:.3f} s reading "
        f"{100 * mine_share:.2f}% of it; ffmpeg {ref:.3f} s reading {100 * ref_share:.2f}%; ratio {mine / ref:.2f}; {load()}"
    )


if __name__ == "__main__":
    main()
