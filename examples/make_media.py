"""Makes sample media for the examples: three photos, a music track and a video clip
with sound, in examples/media/ (or --into DIR). Replace them with your own files of the
same names, or point the examples' `filename` attributes at yours.

    python examples/make_media.py
"""

from __future__ import annotations

import argparse
import wave
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw

RATE = 44100
PHOTOS = {  # name: (sky, ground, sun) colours
    "photo-1.jpg": ((70, 130, 200), (30, 90, 160), (250, 220, 120)),
    "photo-2.jpg": ((240, 180, 120), (90, 140, 60), (255, 250, 230)),
    "photo-3.jpg": ((30, 30, 70), (60, 50, 40), (240, 240, 255)),
}


def photo(path: Path, sky: tuple[int, ...], ground: tuple[int, ...], sun: tuple[int, ...]) -> None:
    """A 1280x720 landscape: a sky gradient, a sun and a ground of hills."""
    height, width = 720, 1280
    fade = np.linspace(0.6, 1.0, height)[:, None, None]
    pixels = (np.array(sky)[None, None, :] * fade).repeat(width, axis=1).astype(np.uint8)
    picture = Image.fromarray(pixels)
    draw = ImageDraw.Draw(picture)
    draw.ellipse((880, 90, 1060, 270), fill=sun)
    hills = [(x, 470 + int(60 * np.sin(x / 150))) for x in range(0, width + 1, 20)]
    draw.polygon([(0, height), *hills, (width, height)], fill=ground)
    picture.save(path, quality=90)


def music(path: Path, seconds: float = 20.0) -> None:
    """A calm arpeggio (A minor, C, G, F), 16-bit stereo WAV."""
    t = np.arange(int(seconds * RATE)) / RATE
    notes = [220.0, 261.63, 329.63, 261.63, 196.0, 246.94, 293.66, 349.23]
    signal = np.zeros_like(t)
    for i, start in enumerate(np.arange(0, seconds, 0.5)):
        tone = (t >= start) & (t < start + 1.0)
        local = t[tone] - start
        signal[tone] += np.sin(2 * np.pi * notes[i % len(notes)] * local) * np.exp(-3 * local)
    samples = (0.3 * signal / np.abs(signal).max() * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(np.repeat(samples, 2).tobytes())


def clip(path: Path, seconds: int = 6, fps: int = 25) -> None:
    """640x360 H.264 with AAC: a square crossing the frame, a rising tone."""
    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height, video.pix_fmt = 640, 360, "yuv420p"
        audio = container.add_stream("aac", rate=RATE)
        audio.layout = "mono"
        for i in range(seconds * fps):
            picture = Image.new("RGB", (640, 360), (20, 40 + 3 * i % 120, 90))
            x = int(540 * i / (seconds * fps))
            ImageDraw.Draw(picture).rectangle((x, 130, x + 100, 230), fill=(250, 200, 40))
            container.mux(video.encode(av.VideoFrame.from_image(picture)))
        container.mux(video.encode())
        t = np.arange(seconds * RATE) / RATE
        tone = (0.2 * np.sin(2 * np.pi * (300 + 40 * t) * t)).astype(np.float32)
        for start in range(0, len(tone), 1024):
            frame = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = RATE, start, Fraction(1, RATE)
            container.mux(audio.encode(frame))
        container.mux(audio.encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--into", type=Path, default=Path(__file__).parent / "media")
    into = parser.parse_args().into
    into.mkdir(parents=True, exist_ok=True)
    for name, colours in PHOTOS.items():
        photo(into / name, *colours)
    music(into / "music.wav")
    clip(into / "clip.mp4")
    print(f"sample media in {into}")


if __name__ == "__main__":
    main()
