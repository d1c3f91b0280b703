"""The DSP beat tracker's pieces (dragon/media/beats.py) on tiny inputs whose answers are
known by construction: the tempo estimate, the beat HMM's decoding, and the bar phase."""

from __future__ import annotations

import numpy as np
import pytest

from dragon.media import beats

FPS = int(beats.FPS)  # 100 frames a second


def pulses(period: int, seconds: float = 20.0, first: int = 10, height: float = 1.0) -> np.ndarray:
    """An onset strength with a sharp onset every ``period`` frames from frame ``first``."""
    strength = np.zeros(int(seconds * FPS))
    strength[first::period] = height
    return strength


@pytest.mark.parametrize("bpm", [80, 100, 120, 150])
def test_the_tempo_of_a_regular_pulse_is_its_period(bpm: int) -> None:
    period = 60 * FPS / bpm  # frames: 75, 60, 50, 40
    assert beats.tempo_period(pulses(round(period))) == pytest.approx(period, abs=0.5)


def test_noise_without_peaks_has_no_tempo() -> None:
    noise = np.random.default_rng(3).uniform(0.4, 0.6, 20 * FPS)
    assert beats.tempo_period(noise, peaky=False) is None


def test_a_clip_too_short_for_two_slow_beats_has_no_tempo() -> None:
    assert beats.tempo_period(pulses(50, seconds=0.3)) is None


def test_the_hmm_puts_a_beat_on_every_pulse() -> None:
    found = beats.viterbi(pulses(50, first=10), 50.0)
    assert found.tolist() == list(range(10, 20 * FPS, 50))


def test_the_hmm_keeps_counting_through_a_rest() -> None:
    strength = pulses(50, first=10)
    strength[510:760] = 0.0  # five beats without an onset (frames 510 to 710)
    found = beats.viterbi(strength, 50.0)
    assert found.tolist() == list(range(10, 20 * FPS, 50))


def test_the_hmm_follows_a_pulse_that_speeds_up_within_its_range() -> None:
    # 50 frames apart for 10 s, then 45 (120 then 133 BPM): within the HMM's tempo range.
    onsets = list(range(10, 1000, 50)) + list(range(1010, 2000, 45))
    strength = np.zeros(20 * FPS)
    strength[onsets] = 1.0
    assert beats.viterbi(strength, 50.0).tolist() == onsets


def _features(frames: int, low_every: int, low_phase: int, beat_frames: list[int]) -> beats.Features:
    """Flat flux and chroma, no snare band; a low-frequency onset on the beats of one phase
    of the bar."""
    low = np.zeros(frames)
    for i, f in enumerate(beat_frames):
        if i % low_every == low_phase:
            low[f] = 1.0
    return beats.Features(
        flux=np.ones(frames), low=low, chroma=np.ones((frames, 12)), duration=frames / beats.FPS, snare=np.zeros(frames)
    )


@pytest.mark.parametrize("meter, phase", [(4, 0), (4, 1), (4, 3), (3, 0), (3, 2)])
def test_downbeats_are_the_beats_that_carry_the_low_onsets(meter: int, phase: int) -> None:
    beat_frames = list(range(10, 2000, 50))
    features = _features(2000, meter, phase, beat_frames)
    found = beats.find_downbeats(np.array(beat_frames, dtype=float), features)
    assert found.tolist() == beat_frames[phase::meter]


def test_downbeats_follow_the_chord_changes_when_the_bass_says_nothing() -> None:
    beat_frames = list(range(10, 2000, 50))
    features = _features(2000, 4, 0, beat_frames)
    features.low[:] = 0.0
    chroma = np.zeros((2000, 12))
    for bar, start in enumerate(beat_frames[2::4]):  # a new chord every 4 beats from beat 2
        chroma[start:, :] = 0.0
        chroma[start:, (bar * 5) % 12] = 1.0
    chroma[: beat_frames[2], 7] = 1.0  # a pickup of two beats on another chord
    found = beats.find_downbeats(
        np.array(beat_frames, dtype=float),
        beats.Features(features.flux, features.low, chroma, features.duration, features.snare),
    )
    assert found.tolist() == beat_frames[2::4]


def test_the_onset_envelope_marks_rises_and_ignores_a_steady_level() -> None:
    flux = np.full(1000, 0.3)
    assert not beats.onset_envelope(flux).any()
    flux[10::50] = 2.0  # onsets on a steady level
    envelope = beats.onset_envelope(flux)
    assert np.flatnonzero(envelope == 1.0).tolist() == list(range(10, 1000, 50))
    assert envelope.max(initial=0.0, where=np.arange(1000) % 50 != 10) < 0.05


def _bar_features(
    beat_frames: list[int],
    low_per_beat: list[float],
    snare_per_beat: list[float],
    mid_per_beat: tuple[float, ...] = (0.0,),
) -> beats.Features:
    """Flat chroma; per bar position, the heights of the low, snare and other (mid-band)
    onsets on the beats; the flux, over all bands, is their sum."""
    frames = beat_frames[-1] + 50
    low, snare, mid = np.zeros(frames), np.zeros(frames), np.zeros(frames)
    for i, f in enumerate(beat_frames):
        low[f] = low_per_beat[i % len(low_per_beat)]
        snare[f] = snare_per_beat[i % len(snare_per_beat)]
        mid[f] = mid_per_beat[i % len(mid_per_beat)]
    return beats.Features(low + snare + mid, low, np.ones((frames, 12)), frames / beats.FPS, snare)


def test_a_one_drop_bar_starts_two_beats_before_its_kick_and_snare() -> None:
    # Bars of 4 from the second beat: bass on beats 2 and 4 (0.5), kick and rimshot together
    # on 3, nothing on 1.
    # Loudest low onset first: 1.41 + 1.41 / 3 = 1.89; read as a one-drop from beat 1:
    # 1.5 x min(low fit 1.41, snare fit 2.31, empty-beat-1 fit 1.33) = 2.0, which wins
    # (all-band onsets per beat 0, 0.5, 2, 0.5; z-scores -1, -1/3, 5/3, -1/3).
    beat_frames = list(range(10, 2000, 50))
    features = _bar_features(beat_frames, [0.5, 0.0, 0.5, 1.0], [0.0, 0.0, 0.0, 1.0])
    found = beats.find_downbeats(np.array(beat_frames, dtype=float), features)
    assert found.tolist() == beat_frames[1::4]


def test_a_bar_with_a_loud_first_beat_is_not_read_as_a_one_drop() -> None:
    # The one-drop's low and snare onsets, but a chord struck on beat 1 (3.0 in the mid
    # bands): all-band onsets per beat 3, 0.5, 2, 0.5 (z-scores 1.41, -0.94, 0.47, -0.94)
    # fit an empty beat 1 at -1.89, so the one-drop reading scores 1.5 x -1.89 and the
    # loudest low onset (the kick) starts the bar.
    beat_frames = list(range(10, 2000, 50))
    features = _bar_features(beat_frames, [0.5, 0.0, 0.5, 1.0], [0.0, 0.0, 0.0, 1.0], (0.0, 3.0, 0.0, 0.0))
    found = beats.find_downbeats(np.array(beat_frames, dtype=float), features)
    assert found.tolist() == beat_frames[3::4]


def test_a_backbeat_bar_starts_on_its_kick_not_as_a_one_drop() -> None:
    # Kick on 1 (and softer on 3), snare on 2 and 4: the snare is not with the kick.
    beat_frames = list(range(10, 2000, 50))
    features = _bar_features(beat_frames, [0.0, 1.0, 0.0, 0.5], [1.0, 0.0, 1.0, 0.0])
    found = beats.find_downbeats(np.array(beat_frames, dtype=float), features)
    assert found.tolist() == beat_frames[1::4]


def _flux(onsets: dict[int, float], seconds: float = 20.0) -> beats.Features:
    """Features with onsets of the given heights at the given frames, in every band."""
    flux = np.zeros(int(seconds * FPS))
    for frame, height in onsets.items():
        flux[frame] = height
    return beats.Features(flux, flux.copy(), np.ones((flux.size, 12)), seconds, flux.copy())


def test_a_slow_reading_with_half_beats_as_strong_as_its_beats_is_doubled() -> None:
    # Kick and snare alternating every 34 frames (176 BPM): the autocorrelation prefers
    # 68 frames (88 BPM), whose half beats are the snares, as strong as the beats.
    onsets = {f: 1.0 if i % 2 == 0 else 0.95 for i, f in enumerate(range(10, 2000, 34))}
    found = beats.track_beats(_flux(onsets))
    assert np.diff(found).tolist() == [34.0] * (found.size - 1)
    assert found[0] == 10 and found.size == len(onsets)


def test_a_slow_pulse_with_soft_eighths_keeps_its_rate() -> None:
    onsets = {f: 1.0 for f in range(10, 2000, 70)} | {f: 0.3 for f in range(45, 2000, 70)}
    found = beats.track_beats(_flux(onsets))
    assert np.diff(found).tolist() == [70.0] * (found.size - 1)
