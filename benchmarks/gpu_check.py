"""On a GPU worker: do NVDEC frames match the CPU decoder's, and does a convert run
through the GPU decoder? Prints one line per check.

    CUDA_VISIBLE_DEVICES=0 python benchmarks/gpu_check.py SOURCE.mp4
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from PIL import ImageChops, ImageStat

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dragon.media import video  # noqa: E402


def first_frames(source: Path, count: int) -> tuple[str, list]:
    with video.open_video(source) as container:
        decoder = video.Decoder(container, container.streams.video[0])
        frames = []
        for frame in decoder.frames():
            frames.append(frame.to_image())
            if len(frames) == count:
                break
        return decoder.name, frames


def main() -> None:
    source = Path(sys.argv[1])
    gpu_name, gpu_frames = first_frames(source, 30)
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    cpu_name, cpu_frames = first_frames(source, 30)
    diffs = [ImageStat.Stat(ImageChops.difference(g.convert("L"), c.convert("L"))).mean[0] for g, c in zip(gpu_frames, cpu_frames)]
    print(f"{gpu_name} vs {cpu_name}: {len(diffs)} frames, largest mean abs diff {max(diffs):.2f}")
    os.environ["CUDA_VISIBLE_DEVICES"] = "0"
    out = Path(tempfile.mkdtemp()) / "out.mp4"
    video.convert(source, out, video.Encoding(640, 360, False), lambda done: None)
    print("convert through the GPU decoder:", video.probe(out).values())


if __name__ == "__main__":
    main()
