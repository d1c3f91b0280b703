"""Sound files written for the tests."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def write_wav(
    path: Path,
    seconds: float,
    rate: int,
    channels: int,
    codec: str = "pcm_f32le",
    metadata: dict[str, str] | None = None,
) -> Path:
    """A chord with a noise floor as a WAV file (float samples unless ``codec`` says
    otherwise; ``metadata`` goes into its header): something for a psychoacoustic model
    to work on, and no stretch of silence."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(3)
    left = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 1250 * t) + 0.05 * rng.standard_normal(t.size)
    planes = np.stack([np.roll(left, 300 * k) for k in range(channels)]).astype(np.float32)
    layout = LAYOUTS[channels]
    with av.open(str(path), "w", format="wav") as out:
        out.metadata.update(metadata or {})
        stream = out.add_stream(codec, rate=rate, layout=layout)
        assert isinstance(stream, av.audio.stream.AudioStream)
        frame = av.AudioFrame.from_ndarray(planes, format="fltp", layout=layout)
        frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
        resampler = av.AudioResampler(format=stream.codec_context.format, layout=layout, rate=rate)
        for chunk in [*resampler.resample(frame), None]:  # in the codec's sample format; None flushes
            out.mux(stream.encode(chunk))
    return path


LAYOUTS = {1: "mono", 2: "stereo", 6: "5.1"}
