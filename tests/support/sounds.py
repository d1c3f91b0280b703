"""Sound files written for the tests."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def write_wav(path: Path, seconds: float, rate: int, channels: int) -> Path:
    """A chord with a noise floor as a float WAV file: something for a psychoacoustic
    model to work on, and no stretch of silence."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(3)
    left = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1250 * t) + 0.05 * rng.standard_normal(t.size)
    planes = np.stack([left, np.roll(left, 300)])[:channels].astype(np.float32)
    with av.open(str(path), "w", format="wav") as out:
        stream = out.add_stream("pcm_f32le", rate=rate, layout="stereo" if channels == 2 else "mono")
        frame = av.AudioFrame.from_ndarray(planes, format="fltp", layout=stream.layout.name)
        frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path
