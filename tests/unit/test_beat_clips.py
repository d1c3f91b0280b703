"""The generator of labelled clips: labels that agree with the music drawn, and the same
clip for the same seed."""

from __future__ import annotations

import numpy as np
import pytest

from tools.beat_clips import NO_BEATS, STYLES, TESTS, generate, style_of


@pytest.mark.parametrize("seed", TESTS[:10])
def test_labels_follow_the_meter_and_tempo(seed: int) -> None:
    clip = generate(seed, rate=8000, seconds=12)
    assert clip.style == style_of(seed) and clip.duration == 12
    assert set(clip.downbeats) <= set(clip.beats)
    assert 0 <= clip.beats[0] and clip.beats[-1] < clip.duration
    bars = np.searchsorted(clip.beats, clip.downbeats)
    assert set(np.diff(bars)) <= {clip.meter}
    assert 60 / np.diff(clip.beats[:2])[0] == pytest.approx(clip.tempo, rel=0.15)
    assert np.abs(clip.audio).max() <= 1.0


def test_styles_take_turns() -> None:
    assert [style_of(s) for s in TESTS[: 2 * len(STYLES)]] == list(STYLES) * 2


def test_a_seed_gives_the_same_clip() -> None:
    first, again = generate(TESTS[3], rate=8000, seconds=8), generate(TESTS[3], rate=8000, seconds=8)
    assert np.array_equal(first.audio, again.audio) and np.array_equal(first.beats, again.beats)


def test_clips_without_beats_have_no_labels() -> None:
    clip = generate(TESTS[0], rate=8000, seconds=5, style=NO_BEATS)
    assert clip.beats.size == 0 and clip.downbeats.size == 0 and clip.audio.size == 40000
