"""What happens to a mix between the band and the listener: room, EQ, saturation, noise,
level and a lossy codec, each drawn at random per clip."""

from __future__ import annotations

import io

import av
import numpy as np
from scipy import fft, signal

from tools.beat_clips.sounds import bandpass, highpass, lowpass

CODECS = {  # name -> (encoder, muxer, bit rates)
    "mp3": ("libmp3lame", "mp3", (32_000, 64_000, 96_000, 128_000, 192_000)),
    "aac": ("aac", "adts", (32_000, 64_000, 96_000, 128_000)),
    "opus": ("libopus", "ogg", (16_000, 24_000, 48_000, 96_000)),
}
OPUS_RATES = (8000, 12000, 16000, 24000, 48000)


def reverb(x: np.ndarray, rng: np.random.Generator, rate: int) -> np.ndarray:
    """A room: decaying noise (RT60 0.2-2.5 s) after a short pre-delay, mixed in wet."""
    rt60 = rng.uniform(0.2, 2.5)
    t = np.arange(int(rt60 * rate)) / rate
    tail = lowpass(rng.standard_normal(t.size), rng.uniform(2000, 7000), rate) * np.exp(-6.9 * t / rt60)
    response = np.concatenate((np.zeros(int(rng.uniform(0.0, 0.03) * rate)), tail))
    wet = signal.oaconvolve(x, response)[: x.size]
    wet *= np.sqrt(np.mean(x**2) / (np.mean(wet**2) + 1e-12))
    amount = rng.uniform(0.05, 0.6)
    return (1 - amount) * x + amount * wet


def equalise(x: np.ndarray, rng: np.random.Generator, rate: int) -> np.ndarray:
    """A tilt, a thin or boomy speaker, or a telephone band."""
    choice = rng.choice(["dark", "thin", "telephone", "boomy"])
    if choice == "dark":
        return lowpass(x, rng.uniform(1500, 6000), rate)
    if choice == "thin":
        return highpass(x, rng.uniform(100, 400), rate)
    if choice == "telephone":
        return bandpass(x, 300, 3400, rate)
    return x + rng.uniform(0.5, 2.0) * lowpass(x, 150, rate)


def noise(x: np.ndarray, rng: np.random.Generator, rate: int) -> np.ndarray:
    """Hiss (white, pink or brown), mains hum or vinyl crackle at 5-40 dB below the music."""
    kind = rng.choice(["white", "pink", "brown", "hum", "crackle"])
    n = x.size
    if kind == "hum":
        t = np.arange(n) / rate
        base = rng.choice([50.0, 60.0])
        added = sum(np.sin(2 * np.pi * base * k * t) / k for k in range(1, 6))
    elif kind == "crackle":
        added = np.zeros(n)
        clicks = rng.integers(0, n, int(rng.uniform(3, 30) * n / rate))
        added[clicks] = rng.standard_normal(clicks.size) * 20
        added = highpass(added, 1000, rate)
    else:
        size = fft.next_fast_len(n, real=True)
        spectrum = fft.rfft(rng.standard_normal(size))
        frequency = np.maximum(fft.rfftfreq(size, 1 / rate), 20.0)
        spectrum /= {"white": 1.0, "pink": np.sqrt(frequency), "brown": frequency}[kind]
        added = fft.irfft(spectrum, size)[:n]
    snr = rng.uniform(5, 40)
    added *= np.sqrt(np.mean(x**2) / (np.mean(added**2) + 1e-12)) * 10 ** (-snr / 20)
    return x + added


def codec(x: np.ndarray, rng: np.random.Generator, rate: int) -> np.ndarray:
    """The mix encoded with MP3, AAC or Opus at a random bit rate and decoded again."""
    choices = [c for c in CODECS if c != "opus" or rate in OPUS_RATES]
    name = choices[rng.integers(len(choices))]
    encoder, muxer, rates = CODECS[name]
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=muxer) as out:
        stream = out.add_stream(encoder, rate=rate, layout="mono")
        stream.bit_rate = int(rng.choice(rates))
        frame = av.AudioFrame.from_ndarray(np.clip(x, -1, 1).astype(np.float32)[None, :], format="flt", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        out.mux(stream.encode(None))
    buffer.seek(0)
    with av.open(buffer) as container:
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)  # Opus decodes at 48 kHz
        decoded = [c.to_ndarray().reshape(-1) for f in container.decode(audio=0)
                   for c in ([f] if f.sample_rate == rate and f.format.name in ("flt", "fltp") else resampler.resample(f))]
    y = np.concatenate(decoded) if decoded else np.zeros(0, np.float32)
    delay = _delay(x, y, rate)
    y = y[delay : delay + x.size]
    return np.pad(y, (0, x.size - y.size))


def _delay(x: np.ndarray, y: np.ndarray, rate: int) -> int:
    """Samples a codec's priming adds at the start, found by cross-correlation (at most 0.1 s)."""
    span = min(x.size, y.size, 5 * rate)
    reach = int(0.1 * rate)
    if span <= reach:
        return 0
    correlation = signal.correlate(y[: span + reach], x[:span], mode="valid", method="fft")
    return int(np.argmax(correlation[: reach + 1]))
