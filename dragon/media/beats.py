"""Beat and downbeat tracking: signal processing, and two small trained scorers that
choose among the readings it offers.

The pipeline follows the classic trackers (Böck's spectral flux and bar-pointer HMM,
Ellis's tempo prior, beat-synchronous features for the downbeats):

1. features: a log-filtered spectral flux (onset strength), the same flux below 200 Hz
   (kick drums, bass notes) and in 8 groups of mel bands, and a chromagram, computed
   block by block with torch and torchaudio, so a GPU worker runs them on its GPU and
   memory holds features, not audio;
2. tempo: autocorrelation of the onset strength weighted by a log-normal prior around
   120 BPM picks the metrical level; a clip without periodicity (noise, silence) stops here;
3. beats: a Viterbi search over (beat period, position in the beat) states, whose
   period may drift from beat to beat, follows tempo changes; a slow pulse whose half
   beats are as strong as its beats is read at twice the rate. Then the level scorer
   chooses among the beats as tracked, half or a quarter beat off, twice and half as fast,
   from where each band group's onsets fall (on the beats, halfway, at the quarters, on
   alternate beats, at the strongest bar position), how the onsets repeat, and the tempo;
4. downbeats: each reading of the bar (meter 3 or 4, each phase) is described by the
   onsets of each band group at each bar position (their mean and their loudest) and by
   where the chords change, and the bar scorer picks one. Hand-made rules could not
   tell a reggae one-drop (nothing on 1, kick and rimshot on 3) from a funk or rock bar
   read from its third beat.

The scorers' weights (``beats_model.json``, 4.9k numbers) are trained by
tools/train_beats.py on generated training clips; they run in numpy.

This module is the only user of torchaudio in Dragon, so replacing it touches one file.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchaudio

from dragon.media import audio
from dragon.media.gpu import gpu_assigned

RATE = 16000  # Hz: onsets and harmonies of interest lie below 8 kHz
HOP = 160
FPS = RATE / HOP  # 100 feature frames per second
N_FFT = 1024
BANDS = 80  # mel bands of the log-filtered spectrogram
LAG = 2  # frames between the spectra a flux compares
MIN_BPM, MAX_BPM = 40.0, 240.0
MAX_SECONDS = 3600.0  # analysed from the start of a file; bounds features and search memory (~210 MB)
PERIODICITY = 0.2  # autocorrelation peak that shows a repeating onset pattern
PEAKINESS = 2.0  # loud onsets (99th percentile) over the median flux that show onsets at all
PRIOR_BPM = 120.0  # centre of the log-normal tempo prior
PRIOR_OCTAVES = 0.7  # and its width
HALF_TIME_BPM = 100.0  # below this tempo, half beats as strong as the beats mean the pulse is twice as fast
HALF_TIME_RATIO = 0.85  # mean onset strength between beats over that on them that shows it
BAND_GROUPS = 8  # groups of 10 mel bands whose onsets describe a bar position
METERS = (4, 3)  # the bar readings scored, each at every phase
CONTRAST_SCALE = 5.0  # the bar-to-bar chord contrast brought near the other inputs' range
LEVEL_MIN_BEATS = 8  # fewer tracked beats than this are kept as they are
LEAD_IN_SOUND = 0.1  # loudness over the clip's median that a beat added before the first needs
LEAD_IN_SLACK = 7  # frames before the file's start where such a beat is still placed (at its start)
ONSET_DELAY = 0.007  # s: a beat's flux peak comes this long before its onset (median on development clips)
MODEL = "beats_model.json"  # the trained scorers' weights, package data of dragon.media


@dataclass(frozen=True)
class Beats:
    beats: list[float]
    downbeats: list[float]
    duration: float


@dataclass(frozen=True)
class Features:
    flux: np.ndarray  # (frames,) onset strength
    low: np.ndarray  # (frames,) onset strength below 200 Hz
    chroma: np.ndarray  # (frames, 12) energy per pitch class
    duration: float
    bands: np.ndarray  # (frames, BAND_GROUPS) onset strength per group of mel bands, low to high


def analyse(path: Path, device: str | None = None) -> Beats:
    """Beats and downbeats of the audio file at ``path``, in seconds; on the GPU Ray
    assigned to this worker, if any."""
    if device is None:
        device = "cuda" if gpu_assigned() and torch.cuda.is_available() else "cpu"
    features = extract(audio.mono(path, RATE, MAX_SECONDS), device)
    beats = choose_level(track_beats(features), features)
    meter, phase = bar_phase(beats, features)
    beats, phase = lead_in(beats, meter, phase, features)
    return Beats(
        beats=_seconds(beats, features.duration),
        downbeats=_seconds(beats[phase::meter], features.duration),
        duration=features.duration,
    )


def _seconds(frames: np.ndarray, duration: float) -> list[float]:
    """Frames as times in seconds, later by ``ONSET_DELAY``: a centred window's log
    spectrum rises as an onset enters it, before the window reaches it, so the flux
    peaks (and beats fall) a little early."""
    return [round(min(f / FPS + ONSET_DELAY, duration), 3) for f in frames]


def extract(blocks: Iterable[np.ndarray], device: str = "cpu") -> Features:
    """Per-frame features of a mono signal given as consecutive blocks of samples."""
    window, mel, low_bands, chroma_map = _kernels(device)
    pending = np.zeros(N_FFT // 2, dtype=np.float32)  # frames are centred on their time
    previous: torch.Tensor | None = None  # the last LAG log spectra (inf: none yet), for the next block's flux
    rows = _Rows(2 + BAND_GROUPS + 12)  # per frame: flux, low, bands, chroma
    samples = 0

    def consume(signal: np.ndarray) -> int:
        """Adds the features of every whole frame of ``signal``; returns the samples used up."""
        nonlocal previous
        frames = 1 + (signal.size - N_FFT) // HOP
        if frames <= 0:
            return 0
        spectrum = (
            torch.stft(
                torch.from_numpy(signal[: (frames - 1) * HOP + N_FFT]).to(device),
                N_FFT,
                HOP,
                window=window,
                center=False,
                return_complex=True,
            )
            .abs()
            .T
        )  # (frames, bins)
        logged = torch.log1p(100.0 * (spectrum @ mel))
        if previous is None:  # the first frames have nothing to compare with: no rise
            previous = torch.full((LAG, logged.shape[1]), torch.inf, device=device)
        stacked = torch.cat((previous, logged))
        rise = torch.relu(stacked[LAG:] - stacked[:-LAG])  # one row per frame, however short the block
        features = (
            rise.sum(1, keepdim=True),
            rise[:, low_bands].sum(1, keepdim=True),
            rise.reshape(-1, BAND_GROUPS, BANDS // BAND_GROUPS).sum(2),
            spectrum @ chroma_map,
        )
        rows.append(torch.cat(features, 1).cpu().numpy())
        previous = stacked[-LAG:]
        return frames * HOP

    for block in blocks:
        samples += block.size
        signal = np.concatenate((pending, block))
        pending = signal[consume(signal) :]
    consume(np.concatenate((pending, np.zeros(N_FFT // 2, dtype=np.float32))))
    table = rows.done()
    return Features(
        table[:, 0].copy(),
        table[:, 1].copy(),
        table[:, 2 + BAND_GROUPS :].copy(),
        samples / RATE,
        table[:, 2 : 2 + BAND_GROUPS].copy(),
    )


class _Rows:
    """A float32 table that grows a block of rows at a time, in one buffer doubled when
    full. Kept as a list of each block's small arrays, the features sat between the
    blocks' large temporaries and fragmented the C heap: the process's memory grew by
    about 1 MB per 4-second block (0.7-1.1 GB for an hour's file) and a long-lived worker kept
    it; with one buffer the features of an hour take about 70 MB."""

    def __init__(self, columns: int) -> None:
        self.table = np.empty((4096, columns), np.float32)
        self.size = 0

    def append(self, block: np.ndarray) -> None:
        end = self.size + block.shape[0]
        if end > self.table.shape[0]:
            grown = np.empty((max(end, 2 * self.table.shape[0]), self.table.shape[1]), np.float32)
            grown[: self.size] = self.table[: self.size]
            self.table = grown
        self.table[self.size : end] = block
        self.size = end

    def done(self) -> np.ndarray:
        return self.table[: self.size]


@functools.lru_cache(maxsize=4)
def _kernels(device: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Analysis window, mel filterbank, low-band mask and chroma map, built once per device."""
    bins = N_FFT // 2 + 1
    mel = torchaudio.functional.melscale_fbanks(bins, 30.0, RATE / 2, BANDS, RATE)
    centres = _band_centres(BANDS)
    return (
        torch.hann_window(N_FFT, device=device),
        mel.to(device),
        torch.from_numpy(centres < 200.0).to(device),
        torch.from_numpy(_chroma_matrix(bins)).to(device),
    )


def track_beats(features: Features) -> np.ndarray:
    """Beat positions in frames; empty without periodicity."""
    flux = features.flux
    strength = onset_strength(features)
    active = np.flatnonzero(_activity(flux))
    if active.size < 2 * FPS * 60 / MAX_BPM:
        return np.zeros(0)
    begin, end = active[0], active[-1] + 1
    playing = flux[begin:end]
    median = np.median(playing)
    peaky = median <= 0 or np.percentile(playing, 99) >= PEAKINESS * median
    period = tempo_period(strength[begin:end], peaky)
    if period is None:
        return np.zeros(0)
    frames = viterbi(strength[begin:end], period) + begin
    if 60 * FPS / period < HALF_TIME_BPM and _half_beat_ratio(frames, strength) >= HALF_TIME_RATIO:
        frames = viterbi(strength[begin:end], period / 2) + begin
    return _trim(frames, strength)


def _half_beat_ratio(beats: np.ndarray, strength: np.ndarray) -> float:
    """Mean onset strength halfway between beats over that on the beats: near 0 for a
    pulse read at its own rate, near 1 for one read at half its rate (every other beat)."""
    if beats.size < 2:
        return 0.0
    near = _nearby_max(strength, 3)
    on = _at(near, beats).mean()
    between = _at(near, (beats[1:] + beats[:-1]) / 2).mean()
    return float(between / on) if on > 0 else 0.0


def _nearby_max(x: np.ndarray, reach: int) -> np.ndarray:
    """The largest value of ``x`` within ``reach`` frames of each frame (the ends repeated
    beyond the signal): a peak counts at a beat that the tracker placed a few frames off.
    Computed once per signal, then read at many sets of frames with :func:`_at`."""
    padded = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(reach, reach)], mode="edge")
    return np.lib.stride_tricks.sliding_window_view(padded, 2 * reach + 1, axis=-1).max(-1)


def _at(x: np.ndarray, frames: np.ndarray) -> np.ndarray:
    """``x`` (frames last) at the frames nearest to ``frames``, which may lie past either end."""
    # take keeps each row contiguous, so a row's mean sums as the lone row's would
    return np.take(x, np.round(frames).astype(np.int64).clip(0, x.shape[-1] - 1), axis=-1)


def _trim(beats: np.ndarray, strength: np.ndarray, floor: float = 0.15) -> np.ndarray:
    """Drop the leading and trailing beats without an onset (the HMM keeps counting
    through a quiet intro or a fading tail); rests inside the music keep their beats."""
    if beats.size == 0:
        return beats
    frames = np.round(beats).astype(np.int64)
    onsets = np.array([strength[max(0, f - 2) : f + 3].max() for f in frames])
    heard = np.flatnonzero(onsets >= floor * np.median(onsets))
    return beats[heard[0] : heard[-1] + 1] if heard.size else beats[:0]


def onset_strength(features: Features) -> np.ndarray:
    """The onset envelope the beats follow: low-frequency onsets (kick drums, bass notes)
    count twice, since beats tend to fall on them."""
    return onset_envelope(_normalised(features.flux) + 0.5 * _normalised(features.low))


def onset_envelope(flux: np.ndarray) -> np.ndarray:
    """Onset strength in 0..1: the flux above its local mean, scaled by its loud peaks."""
    if flux.size == 0:
        return flux
    local = _moving_average(flux, int(FPS * 0.4))
    rises = np.maximum(flux - local, 0.0)
    scale = np.percentile(rises, 99.5)
    return np.clip(rises / scale, 0.0, 1.0) if scale > 0 else np.zeros_like(rises)


def tempo_period(strength: np.ndarray, peaky: bool = True) -> float | None:
    """The beat period in frames, or None when nothing repeats.

    A signal counts as rhythmic when its onsets stand out (``peaky``) or its onset strength
    repeats; stationary noise does neither. Autocorrelations of 8-second windows (so a
    tempo that drifts still lines up) are averaged, then weighted by a log-normal prior
    (``PRIOR_BPM``, ``PRIOR_OCTAVES`` wide).
    """
    window = min(strength.size, int(8 * FPS))
    shortest, longest = int(60 * FPS / MAX_BPM), min(int(60 * FPS / MIN_BPM), window // 2)
    if longest <= shortest:
        return None
    segments = np.lib.stride_tricks.sliding_window_view(strength, window)[:: int(FPS)]
    segments = (segments - segments.mean(1, keepdims=True)) * np.hanning(window)
    spectra = np.fft.rfft(segments, 2 * window, axis=1)
    ac = np.fft.irfft(spectra * np.conj(spectra), axis=1)[:, :window]
    energy = ac[:, 0]
    if not (energy > 0).any():
        return None
    ac = (ac[energy > 0] / energy[energy > 0, None]).mean(0)
    lags = np.arange(shortest, longest + 1)
    if ac[lags].max() < PERIODICITY and not peaky:
        return None
    bpm = 60 * FPS / lags
    weighted = np.maximum(ac[lags], 0) * np.exp(-0.5 * (np.log2(bpm / PRIOR_BPM) / PRIOR_OCTAVES) ** 2)
    best = int(np.argmax(weighted))
    lag = float(lags[best])
    if 0 < best < lags.size - 1:  # parabolic interpolation between lags
        a, b, c = weighted[best - 1 : best + 2]
        if a - 2 * b + c < 0:
            lag += 0.5 * (a - c) / (a - 2 * b + c)
    return lag


def viterbi(strength: np.ndarray, period: float, spread: float = 1.4, change: float = 300.0) -> np.ndarray:
    """Most likely beat frames under a beat-pointer HMM.

    A state is (beat period p, frames since the last beat); the period may change at each
    beat with probability falling as exp(-change * |p'/p - 1|) and stays within
    ``period / spread .. period * spread``, which keeps the metrical level of the tempo
    estimate. The first sixteenth of a beat "emits" the onset strength, the rest its
    complement (after Krebs, Böck and Widmer, 2015).

    Between beats a state only counts frames, so the search keeps just each period's best
    score for a beat at each frame: the score of any other state is that of the beat it
    counts from plus the emissions since (differences of cumulative sums). A beat's score
    depends on beats at least the shortest period earlier, so that many frames are
    searched at once: the frame-by-frame search over every state found the same beats,
    spending its time on numpy's cost per call rather than on arithmetic.
    """
    low, high = max(2.0, period / spread), period * spread
    periods = np.unique(np.round(np.geomspace(low, high, 40)).astype(np.int64))
    count, longest, block = periods.size, int(periods[-1]), int(periods[0])
    onset_positions = np.ceil(np.maximum(1, periods / 16)).astype(np.int64)  # positions < p/16 emit onsets
    ratio = periods[None, :] / periods[:, None]
    transition = -change * np.abs(ratio - 1)
    transition -= np.log(np.exp(transition).sum(1, keepdims=True))
    incoming = np.ascontiguousarray(transition.T)  # [period, previous period]
    on = np.log(np.clip(strength, 1e-4, 1.0))
    off = np.log(np.clip((1 - strength) / 15, 1e-4, 1.0))
    gain = on - off
    frames = strength.size
    # Frames are indexed from `longest` silent frames before the first: a start in any
    # state (uniformly likely) is a beat in those frames, counting through them.
    summed_off = np.concatenate((np.zeros(longest + 1), np.cumsum(off)))
    summed_gain = np.concatenate((np.zeros(longest + 1), np.cumsum(gain)))

    def counted(beat_at: np.ndarray, now: np.ndarray, since: np.ndarray) -> np.ndarray:
        """Emissions after a beat at index ``beat_at`` up to ``now``, ``since`` frames on."""
        return (
            summed_off[now + 1]
            - summed_off[beat_at + 1]
            + summed_gain[beat_at + np.minimum(since, onset_positions - 1) + 1]
            - summed_gain[beat_at + 1]
        )

    ring = longest  # the beat scores kept: a block reads those up to a period back, then writes its own
    beat = np.full((ring, count), -math.log(int(periods.sum())))
    back = np.empty((frames, count), dtype=np.int16)
    columns = np.arange(count)
    for first in range(0, frames, block):
        now = np.arange(first, min(first + block, frames))[:, None] + longest
        ending = now - periods  # each period's beat whose last frame is just before now
        ended = beat[ending % ring, columns] + counted(ending, now - 1, periods - 1)
        candidates = ended[:, None, :] + incoming
        back[first : first + now.shape[0]] = candidates.argmax(2)
        beat[now[:, 0] % ring] = candidates.max(2) + on[now[:, 0] - longest, None]
    # the best final state: a beat `since` frames before the last frame, within its period
    since = np.arange(longest)[:, None]
    last = frames - 1 + longest
    beat_at = last - since
    final = np.where(since < periods, beat[beat_at % ring, columns] + counted(beat_at, last, since), -np.inf)
    chosen, since_beat = np.unravel_index(int(np.argmax(final.T)), final.T.shape)  # ties as (period, position)
    found = []
    t = frames - 1 - int(since_beat)
    while t >= 0:
        found.append(t)
        chosen = int(back[t, chosen])
        t -= int(periods[chosen])
    return _refine(np.array(found[::-1], dtype=np.int64), strength, longest // 16 + 2)


def _refine(beats: np.ndarray, strength: np.ndarray, reach: int) -> np.ndarray:
    """Move each beat to the strongest onset nearby (the HMM places it within a region)."""
    out = beats.astype(np.float64)
    for i, b in enumerate(beats):
        lo, hi = max(0, b - 2), min(strength.size, b + reach)
        if hi > lo and strength[lo:hi].max() > 0:
            out[i] = lo + int(np.argmax(strength[lo:hi]))
    return out


def choose_level(beats: np.ndarray, features: Features) -> np.ndarray:
    """The reading of the tracked beats (:func:`level_readings`) the level scorer rates
    highest: the tracker's usual mistakes are a whole reading half a beat off (offbeat
    hats and bass louder than the kick) or at twice or half the tempo (a one-drop's
    sparse bar, a slow ballad). Too few beats to judge are kept as tracked. A shifted
    reading's last beat may fall after the end of the signal: it is dropped."""
    if beats.size < LEVEL_MIN_BEATS:
        return beats
    readings = level_readings(beats)
    level = scorers().level
    scores = [Scorers.score(level, inputs) for inputs in level_inputs(readings, features)]
    chosen = readings[int(np.argmax(scores))]
    return chosen[chosen <= features.flux.size - 1]


def level_readings(beats: np.ndarray) -> list[np.ndarray]:
    """The beats as tracked, half a beat later, twice as fast, half as fast from the
    first or from the second beat, and a quarter beat later or earlier (a funk bar read
    on its syncopated sixteenths). The last beat's shifts use the beat before it."""
    step = np.diff(beats)
    step = np.concatenate((step, step[-1:]))
    halfway = beats + step / 2
    return [
        beats,
        halfway,
        np.sort(np.concatenate((beats, halfway[:-1]))),
        beats[0::2],
        beats[1::2],
        beats + step / 4,
        beats + 3 * step / 4,
    ]


def level_inputs(readings: list[np.ndarray], features: Features) -> list[np.ndarray]:
    """For each reading, what tells a beat grid from its shifts and its multiples:

    - per band group and for the whole flux (log, z-scored over the clip): the mean onset
      strength on the beats minus halfway between them (a kick on the beat, hats between),
      halfway minus the quarter points (is the half beat itself a pulse?), and how much the
      beats differ from their neighbours, on the beat and halfway (kick and snare
      alternate beat by beat, not half beat by half beat);
    - the onset strength's autocorrelation at half a beat and at 1, 2, 3 and 4 beats;
    - the tempo as log2(BPM / 120) and that squared;
    - per cue, for bars of 4 and of 3 beats: the strongest bar position's mean onset
      strength on the beats minus the strongest halfway (a one-drop's kick comes once a
      bar, on a beat; read on its offbeat chords, it falls halfway).

    tools/train_beats.py trains on these."""
    # One row per cue, so each input is computed for every cue at once.
    cues = np.stack([_zscore(np.log1p(band)) for band in features.bands.T] + [_zscore(np.log1p(features.flux))])
    near = _nearby_max(cues, 3)  # the beats' own onsets
    close = _nearby_max(cues, 1)  # narrower: the subdivisions lie closer together
    strength = onset_strength(features)
    centred = strength - strength.mean()
    variance = float(centred.var())

    def autocorrelation(lag: float) -> float:
        shift = max(1, round(lag))
        if shift >= centred.size or variance <= 0:
            return 0.0
        return float((centred[:-shift] * centred[shift:]).mean() / variance)

    out = []
    for beats in readings:
        on, spacing = beats[:-1], np.diff(beats)
        between = on + spacing / 2
        period = float(np.median(spacing))
        tempo = math.log2(60 * FPS / period / 120)
        at_on, at_between = _at(near, on), _at(near, between)
        contrast = at_on.mean(1) - at_between.mean(1)
        subdivision = (
            _at(close, between).mean(1)
            - (_at(close, on + spacing / 4).mean(1) + _at(close, on + 3 * spacing / 4).mean(1)) / 2
        )
        alternation = [np.abs(_at(close, at[0::2]).mean(1) - _at(close, at[1::2]).mean(1)) for at in (on, between)]
        periodicity = [autocorrelation(period * k) for k in (0.5, 1, 2, 3, 4)]
        bar_position = [_strongest_position(at_on, meter) - _strongest_position(at_between, meter) for meter in METERS]
        inputs = [contrast, subdivision, *alternation, periodicity, [tempo, tempo * tempo], *bar_position]
        out.append(np.concatenate(inputs).astype(np.float32))
    return out


def _strongest_position(x: np.ndarray, meter: int) -> np.ndarray:
    """Per row of ``x``, the largest mean over every ``meter``-th value, from each of the first."""
    return np.max([x[:, k::meter].mean(1) for k in range(min(meter, x.shape[1]))], axis=0)


def bar_phase(beats: np.ndarray, features: Features) -> tuple[int, int]:
    """The reading of the bar the bar scorer rates highest (see :func:`bar_readings`):
    the beats per bar and the index of the first beat that starts one."""
    if beats.size == 0:
        return METERS[0], 0
    bar = scorers().bar
    meter, phase, _ = max(bar_readings(beats, features), key=lambda r: Scorers.score(bar[r[0]], r[2]))
    return meter, phase


def lead_in(beats: np.ndarray, meter: int, phase: int, features: Features) -> tuple[np.ndarray, int]:
    """The chosen beats with one more, a beat before the first where something sounds,
    and the bar phase counted from it: the tracker's first beat is often the music's
    second. A file's first onset rises above nothing in the flux (no frame before it to
    compare with), and the first beat of a quiet intro is trimmed with the silence before
    it. The bar scorer has judged the beats without it (as it was trained); the new beat
    starts a bar if it falls a bar before the first downbeat. Too few beats to judge are
    kept as they are."""
    if beats.size < LEVEL_MIN_BEATS:
        return beats, phase
    before = beats[0] - np.median(np.diff(beats[:5]))  # the first four beats' period
    frame = round(max(before, 0.0))
    loudness = features.chroma.sum(1)
    if before < -LEAD_IN_SLACK or loudness[max(0, frame - 2) : frame + 3].max() < LEAD_IN_SOUND * np.median(loudness):
        return beats, phase
    return np.concatenate(([max(before, 0.0)], beats)), (phase + 1) % meter


def bar_readings(beats: np.ndarray, features: Features) -> list[tuple[int, int, np.ndarray]]:
    """(meter, phase, inputs) for every reading of the bar: in 4 and in 3, from each of
    the first beats. The inputs: the mean onset strength of each band group at each bar
    position (log, z-scored per group over the clip's beats, so loudness and mix do not
    count) and its loudest at that position (what comes once in a while, not in every
    bar: a crash on 1, the end of a fill before it), the chord change on beat 1 against
    the other beats, and how much each bar's harmony differs from the previous bar's
    (chords change at bar lines, so a reading that straddles them sees less contrast).
    tools/train_beats.py trains on these."""
    frames = np.round(beats).astype(np.int64).clip(0, features.flux.size - 1)
    peaks = _at(_nearby_max(features.bands.T, 3), frames)  # one row per band group
    onsets = np.stack([_zscore(np.log1p(group)) for group in peaks], axis=1)
    bounds = np.concatenate((frames, [features.flux.size]))
    harmony = np.stack(
        [features.chroma[bounds[i] : max(bounds[i + 1], bounds[i] + 1)].mean(0) for i in range(frames.size)]
    )
    chords = harmony / (np.linalg.norm(harmony, axis=1, keepdims=True) + 1e-9)
    change = np.concatenate(([0.0], 1 - (chords[1:] * chords[:-1]).sum(1)))
    if change.size > 1:
        change[0] = change[1:].max()  # the first beat starts something
    change = _zscore(change)
    readings = []
    for meter in METERS:
        for phase in range(meter):
            position = (np.arange(frames.size) - phase) % meter
            profile = [_mean(onsets[position == q]) for q in range(meter)]
            profile += [_loudest(onsets[position == q]) for q in range(meter)]
            first = position == 0
            inputs = np.concatenate(
                [
                    *profile,
                    [
                        _mean(change[first]) - _mean(change[~first]),
                        CONTRAST_SCALE * _bar_contrast(harmony, meter, phase),
                    ],
                ]
            )
            readings.append((meter, phase, inputs.astype(np.float32)))
    return readings


def _bar_contrast(harmony: np.ndarray, meter: int, phase: int) -> float:
    """Mean cosine distance between the harmony of consecutive bars of this reading."""
    starts = range(phase, harmony.shape[0] - meter + 1, meter)
    if len(starts) < 3:
        return 0.0
    bars = np.stack([harmony[s : s + meter].sum(0) for s in starts])
    bars /= np.linalg.norm(bars, axis=1, keepdims=True) + 1e-9
    return float(np.mean(1 - (bars[1:] * bars[:-1]).sum(1)))


def _mean(x: np.ndarray) -> np.ndarray:
    """The mean over the first axis; zeros where a short clip has no beat at a position."""
    return x.mean(0) if x.shape[0] else np.zeros(x.shape[1:])


def _loudest(x: np.ndarray) -> np.ndarray:
    """The largest over the first axis; zeros where a short clip has no beat at a position."""
    return x.max(0) if x.shape[0] else np.zeros(x.shape[1:])


Layers = tuple[np.ndarray, np.ndarray, np.ndarray, float]  # w1, b1, w2, b2


@dataclass(frozen=True)
class Scorers:
    """The trained scorers, each a layer of tanh units then one linear output: ``level``
    rates readings of the beats (:func:`choose_level`), ``bar`` (one per meter) readings
    of the bar (:func:`bar_phase`). Weights: ``MODEL``, from tools/train_beats.py."""

    level: Layers
    bar: dict[int, Layers]

    @staticmethod
    def score(layers: Layers, inputs: np.ndarray) -> float:
        w1, b1, w2, b2 = layers
        return float(np.tanh(inputs @ w1 + b1) @ w2 + b2)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Scorers:
        def layers(m: dict[str, Any]) -> Layers:
            return np.array(m["w1"]), np.array(m["b1"]), np.array(m["w2"]), float(m["b2"])

        return cls(layers(data["level"]), {int(meter): layers(m) for meter, m in data["bar"].items()})


@functools.lru_cache(maxsize=1)
def scorers() -> Scorers:
    return Scorers.from_json(json.loads(resources.files("dragon.media").joinpath(MODEL).read_text()))


def _activity(flux: np.ndarray) -> np.ndarray:
    """Frames in the stretch where the music plays: one second averages above 3% of the loud ones."""
    if flux.size == 0:
        return flux.astype(bool)
    level = _moving_average(flux, int(FPS))
    loud = np.percentile(level, 90)
    return level > 0.03 * loud if loud > 0 else np.zeros(flux.size, dtype=bool)


def _moving_average(x: np.ndarray, width: int) -> np.ndarray:
    width = max(1, width)
    kernel = np.ones(width) / width
    return np.convolve(np.pad(x, (width // 2, width - 1 - width // 2), mode="edge"), kernel, mode="valid")


def _normalised(x: np.ndarray) -> np.ndarray:
    """``x`` over its 99th percentile, so bands of different loudness weigh alike."""
    scale = np.percentile(x, 99) if x.size else 0.0
    return x / scale if scale > 0 else x


def _zscore(x: np.ndarray) -> np.ndarray:
    spread = x.std()
    return (x - x.mean()) / spread if spread > 0 else np.zeros_like(x)


def _band_centres(bands: int, low: float = 30.0, high: float = RATE / 2) -> np.ndarray:
    """Centre frequencies of torchaudio's HTK mel filterbank."""
    mel = np.linspace(2595 * np.log10(1 + low / 700), 2595 * np.log10(1 + high / 700), bands + 2)[1:-1]
    return 700 * (10 ** (mel / 2595) - 1)


def _chroma_matrix(bins: int) -> np.ndarray:
    """(bins, 12): each STFT bin between 55 Hz and 2 kHz added to its pitch class."""
    freqs = np.arange(bins) * RATE / N_FFT
    matrix = np.zeros((bins, 12), dtype=np.float32)
    usable = (freqs >= 55) & (freqs <= 2000)
    classes = np.round(12 * np.log2(freqs[usable] / 440.0)).astype(np.int64) % 12
    matrix[np.flatnonzero(usable), classes] = 1.0
    return matrix
