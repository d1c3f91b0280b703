"""The instruments of generated clips: drum hits and pitched notes, synthesised from
random parameters so that no two clips share a kit or a timbre.

Each maker draws its parameters from ``rng`` once and returns a function of the hit or
note, so one clip keeps one kit and one set of timbres throughout, as a band does.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
from scipy import signal

Hit = Callable[[float], np.ndarray]  # velocity 0..1 -> samples
Note = Callable[[float, float, float], np.ndarray]  # (Hz, seconds held, velocity) -> samples


def _seconds(rate: int, seconds: float) -> np.ndarray:
    return np.arange(int(seconds * rate)) / rate


def lowpass(x: np.ndarray, cutoff: float, rate: int, order: int = 2) -> np.ndarray:
    sos = signal.butter(order, min(cutoff, 0.45 * rate), "low", fs=rate, output="sos")
    return signal.sosfilt(sos, x)


def highpass(x: np.ndarray, cutoff: float, rate: int, order: int = 2) -> np.ndarray:
    sos = signal.butter(order, min(cutoff, 0.4 * rate), "high", fs=rate, output="sos")
    return signal.sosfilt(sos, x)


def bandpass(x: np.ndarray, low: float, high: float, rate: int) -> np.ndarray:
    high = min(high, 0.45 * rate)
    low = min(low, 0.7 * high)
    sos = signal.butter(2, (low, high), "band", fs=rate, output="sos")
    return signal.sosfilt(sos, x)


def _velocity(sample: np.ndarray) -> Hit:
    """A hit whose loudness follows the velocity."""
    return lambda velocity: sample * velocity


def kick(rng: np.random.Generator, rate: int) -> Hit:
    """A pitch-swept sine (acoustic, 808 or techno kick) with a beater click."""
    decay = rng.uniform(0.08, 0.6)
    t = _seconds(rate, min(1.5, 5 * decay))
    start, end, sweep = rng.uniform(90, 260), rng.uniform(38, 70), rng.uniform(0.01, 0.08)
    frequency = end + (start - end) * np.exp(-t / sweep)
    body = np.sin(2 * np.pi * np.cumsum(frequency) / rate) * np.exp(-t / decay)
    click = highpass(rng.standard_normal(t.size), 1500, rate) * np.exp(-t / 0.003) * rng.uniform(0, 0.5)
    sample = np.tanh(rng.uniform(1, 4) * (body + click)) if rng.random() < 0.5 else body + click
    return _velocity(sample / np.abs(sample).max())


def snare(rng: np.random.Generator, rate: int) -> Hit:
    """A snare (tone plus wires), a clap (a few noise bursts) or a rim shot."""
    kind = rng.choice(["snare", "clap", "rim"], p=[0.6, 0.25, 0.15])
    if kind == "rim":
        t = _seconds(rate, 0.12)
        tone = rng.uniform(400, 900)
        sample = np.sin(2 * np.pi * tone * t) * np.exp(-t / rng.uniform(0.01, 0.03))
        sample += highpass(rng.standard_normal(t.size), 2000, rate) * np.exp(-t / 0.004)
    elif kind == "clap":
        t = _seconds(rate, 0.4)
        noise = bandpass(rng.standard_normal(t.size), rng.uniform(700, 1200), rng.uniform(2000, 5000), rate)
        envelope = np.zeros(t.size)
        for start in np.cumsum(rng.uniform(0.006, 0.014, rng.integers(2, 5))):
            envelope += (t >= start) * np.exp(-np.maximum(t - start, 0) / 0.004)
        envelope += (t >= 0.03) * np.exp(-np.maximum(t - 0.03, 0) / rng.uniform(0.05, 0.15))
        sample = noise * envelope
    else:
        t = _seconds(rate, 0.6)
        tone = rng.uniform(150, 300)
        body = (np.sin(2 * np.pi * tone * t) + 0.5 * np.sin(2 * np.pi * 1.6 * tone * t)) * np.exp(-t / rng.uniform(0.03, 0.1))
        wires = bandpass(rng.standard_normal(t.size), rng.uniform(800, 2500), rng.uniform(5000, 9000), rate)
        sample = rng.uniform(0.2, 1) * body + wires * np.exp(-t / rng.uniform(0.06, 0.25))
    return _velocity(sample / np.abs(sample).max())


def metal(rng: np.random.Generator, rate: int, decay: float, brightness: float) -> Hit:
    """Hats, rides and crashes: inharmonic square-ish partials (808 style) or filtered noise."""
    t = _seconds(rate, min(3.0, 5 * decay))
    if rng.random() < 0.5:
        base = rng.uniform(200, 600)
        ratios = np.array([1.0, 1.34, 1.87, 2.29, 2.84, 3.48]) * rng.uniform(0.9, 1.1, 6)
        tone = sum(np.sign(np.sin(2 * np.pi * base * r * t + rng.uniform(0, 6.3))) for r in ratios)
    else:
        tone = rng.standard_normal(t.size)
    sample = highpass(tone, brightness, rate, order=4) * np.exp(-t / decay)
    sample[: int(0.002 * rate)] *= np.linspace(0, 1, int(0.002 * rate))
    return _velocity(sample / (np.abs(sample).max() + 1e-9))


def tom(rng: np.random.Generator, rate: int, pitch: float) -> Hit:
    t = _seconds(rate, 0.8)
    frequency = pitch * (1 + 0.5 * np.exp(-t / 0.03))
    sample = np.sin(2 * np.pi * np.cumsum(frequency) / rate) * np.exp(-t / rng.uniform(0.12, 0.35))
    return _velocity(sample)


def shaker(rng: np.random.Generator, rate: int) -> Hit:
    t = _seconds(rate, 0.15)
    envelope = np.minimum(t / rng.uniform(0.005, 0.02), 1) * np.exp(-t / rng.uniform(0.02, 0.06))
    sample = bandpass(rng.standard_normal(t.size), 3000, 9000, rate) * envelope
    return _velocity(sample / np.abs(sample).max())


def kit(rng: np.random.Generator, rate: int) -> dict[str, Hit]:
    """One drum kit: every piece a pattern may name."""
    low_tom = rng.uniform(80, 130)
    return {
        "kick": kick(rng, rate),
        "snare": snare(rng, rate),
        "rim": snare(rng, rate),
        "hat": metal(rng, rate, rng.uniform(0.015, 0.06), rng.uniform(5000, 9000)),
        "open": metal(rng, rate, rng.uniform(0.15, 0.45), rng.uniform(4000, 8000)),
        "ride": metal(rng, rate, rng.uniform(0.6, 1.5), rng.uniform(2500, 6000)),
        "crash": metal(rng, rate, rng.uniform(1.0, 2.0), rng.uniform(2000, 5000)),
        "tom_low": tom(rng, rate, low_tom),
        "tom_high": tom(rng, rate, low_tom * rng.uniform(1.3, 1.8)),
        "shaker": shaker(rng, rate),
    }


def instrument(rng: np.random.Generator, rate: int, family: str) -> Note:
    """A pitched instrument of ``family`` (piano, epiano, organ, pad, strings, guitar,
    pluck, bass, synth_bass, lead, bell, power) with parameters of its own."""
    decay: float | None  # None: the note is held
    if family in ("epiano", "bell"):
        tone, decay, release = _fm(rng, rate, family), rng.uniform(0.5, 2.5), 0.1
    elif family == "guitar":
        tone, decay, release = _plucked(rng, rate), 3.0, 0.05
    else:
        tone, decay, release = _additive(rng, rate, family)
    attack = {"pad": rng.uniform(0.05, 0.5), "strings": rng.uniform(0.06, 0.3), "organ": rng.uniform(0.005, 0.03),
              "lead": rng.uniform(0.01, 0.06)}.get(family, 0.002)
    drive = rng.uniform(2, 6) if family == "power" else 0.0
    rendered: dict[tuple[float, int], np.ndarray] = {}  # (Hz, velocity step) -> the longest note it may play

    def play(frequency: float, held: float, velocity: float) -> np.ndarray:
        step = int(np.clip(round(velocity * 4), 1, 5))
        key = (round(frequency, 2), step)
        if key not in rendered:
            rendered[key] = tone(frequency, step / 4, MAX_NOTE).astype(np.float32)
        length = min(int((held + release) * rate), int(4 * decay * rate) if decay else 1 << 30, rendered[key].size)
        t = np.arange(max(length, 1)) / rate
        envelope = np.minimum(t / attack, 1.0) * np.clip((held + release - t) / release, 0, 1)
        out = rendered[key][: t.size] * envelope * velocity
        return np.tanh(drive * out) / np.tanh(drive) if drive else out

    return play


MAX_NOTE = 6.0  # seconds: the longest note a pattern holds (a slow 3/4 bar and its release)
Tone = Callable[[float, float, float], np.ndarray]  # (Hz, brightness 0..1.25, seconds) -> samples


def _additive(rng: np.random.Generator, rate: int, family: str) -> tuple[Tone, float | None, float]:
    """Harmonic partials read from two wavetables, a dark one that lasts and the upper
    partials that die sooner: the decay (None: held) and the release."""
    spectra = {  # partial count, spectral slope, decay (s; None = held)
        "piano": (14, rng.uniform(0.8, 1.6), rng.uniform(0.8, 3.0)),
        "organ": (9, rng.uniform(0.3, 1.2), None),
        "pad": (16, rng.uniform(0.9, 1.6), None),
        "strings": (16, rng.uniform(0.8, 1.4), None),
        "pluck": (12, rng.uniform(0.7, 1.5), rng.uniform(0.2, 0.9)),
        "bass": (8, rng.uniform(1.2, 2.5), rng.uniform(0.4, 2.0)),
        "synth_bass": (12, rng.uniform(0.8, 1.4), rng.uniform(0.15, 1.0)),
        "lead": (12, rng.uniform(0.7, 1.3), None),
        "power": (16, rng.uniform(0.5, 1.0), rng.uniform(1.0, 3.0)),
    }
    partials, slope, decay = spectra[family]
    k = np.arange(1, partials + 1)
    amplitudes = k ** -slope * rng.uniform(0.5, 1.5, partials)
    if family == "organ":
        amplitudes *= rng.random(partials) < 0.6
        amplitudes[0] = 1.0
    detune = rng.uniform(0.002, 0.008) if family in ("pad", "strings") else 0.0
    vibrato = rng.uniform(0.002, 0.006) if family in ("strings", "lead") else 0.0
    cycle = np.sin(np.outer(k, np.linspace(0, 2 * np.pi, TABLE, endpoint=False)) + rng.uniform(0, 2 * np.pi, (partials, 1)))

    def tone(frequency: float, brightness: float, seconds: float) -> np.ndarray:
        t = np.arange(int(min(seconds, 4 * decay if decay else seconds) * rate)) / rate
        cycles = frequency * (t + vibrato / (2 * np.pi * 5.5) * (1 - np.cos(2 * np.pi * 5.5 * t)))
        weights = amplitudes * (k * frequency < 0.45 * rate) * np.minimum(brightness, 1) ** (0.3 * k)  # soft is dark
        dark, bright = (weights * (k <= 3)) @ cycle, (weights * (k > 3)) @ cycle

        def read(table: np.ndarray, stretch: float = 1.0) -> np.ndarray:
            index = (cycles * stretch * TABLE).astype(np.int64) % TABLE
            return table[index] if not detune else 0.5 * (table[index] + table[(index * (1 + detune)).astype(np.int64) % TABLE])

        if decay is None:
            return read(dark + bright)
        return read(dark) * np.exp(-t / decay) + read(bright) * np.exp(-3 * t / decay)

    return tone, decay, rng.uniform(0.02, 0.6)


TABLE = 2048  # samples of one wavetable cycle


def _fm(rng: np.random.Generator, rate: int, family: str) -> Tone:
    """Two-operator FM: electric piano (ratio 1) or bell and mallet (inharmonic)."""
    ratio = 1.0 if family == "epiano" else rng.choice([2.76, 3.5, 4.0, 5.19])
    index, index_decay = rng.uniform(0.5, 3.0), rng.uniform(0.05, 0.5)
    decay = rng.uniform(0.5, 2.5)

    def tone(frequency: float, brightness: float, seconds: float) -> np.ndarray:
        t = np.arange(int(min(seconds, 4 * decay) * rate)) / rate
        modulator = index * brightness * np.exp(-t / index_decay) * np.sin(2 * np.pi * ratio * frequency * t)
        return np.sin(2 * np.pi * frequency * t + modulator) * np.exp(-t / decay)

    return tone


def _plucked(rng: np.random.Generator, rate: int) -> Tone:
    """Karplus-Strong strings: each period is the last one averaged with itself shifted by a
    sample, so period k is the first one filtered k times, done at once in the frequency domain."""
    damping = rng.uniform(0.990, 0.999)
    brightness = rng.uniform(0.3, 0.9)

    def tone(frequency: float, velocity: float, seconds: float) -> np.ndarray:
        period = max(2, int(round(rate / frequency)))
        burst = lowpass(rng.uniform(-1, 1, period), 500 + 7000 * brightness * min(velocity, 1), rate, 1)
        response = damping * 0.5 * (1 + np.exp(-2j * np.pi * np.fft.rfftfreq(period)))
        count = int(np.ceil(min(seconds, 3.0) * rate / period))
        blocks = np.fft.irfft(np.fft.rfft(burst)[None, :] * response[None, :] ** np.arange(count)[:, None], period, axis=1)
        return blocks.reshape(-1)

    return tone
