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
    """Flat flux and chroma; a low-frequency onset on the beats of one phase of the bar."""
    low = np.zeros(frames)
    for i, f in enumerate(beat_frames):
        if i % low_every == low_phase:
            low[f] = 1.0
    return beats.Features(flux=np.ones(frames), low=low, chroma=np.ones((frames, 12)), duration=frames / beats.FPS)


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
        np.array(beat_frames, dtype=float), beats.Features(features.flux, features.low, chroma, features.duration)
    )
    assert found.tolist() == beat_frames[2::4]


def test_the_onset_envelope_marks_rises_and_ignores_a_steady_level() -> None:
    flux = np.full(1000, 0.3)
    assert not beats.onset_envelope(flux).any()
    flux[10::50] = 2.0  # onsets on a steady level
    envelope = beats.onset_envelope(flux)
    assert np.flatnonzero(envelope == 1.0).tolist() == list(range(10, 1000, 50))
    assert envelope.max(initial=0.0, where=np.arange(1000) % 50 != 10) < 0.05
