"""The beat tracker's pieces (dragon/media/beats.py) on tiny inputs whose answers are
known by construction: the tempo estimate, the beat HMM's decoding, the bar readings'
inputs, and the bar phase the trained scorer picks where the music leaves no doubt."""

from __future__ import annotations

import subprocess
import sys

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


@pytest.mark.parametrize("period", [8, 25, 140])
def test_the_hmm_follows_a_pulse_at_any_rate(period: int) -> None:
    # 750, 240 and 43 BPM: the search steps as many frames at once as its shortest period.
    # The first pulse may go without a beat (its first sixteenth sounds nothing after the
    # onset, which costs a slow beat more than starting in the middle of one).
    found = beats.viterbi(pulses(period, first=10), float(period))
    assert [int(f) for f in found if f > 10] == list(range(10 + period, 20 * FPS, period))


def test_the_hmm_finds_the_beats_of_a_clip_shorter_than_its_longest_period() -> None:
    found = beats.viterbi(pulses(50, seconds=1.2, first=20), 50.0)
    assert found.tolist() == [20, 70]


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


def _viterbi_state_by_state(strength: np.ndarray, period: float) -> np.ndarray:
    """The beat HMM of :func:`beats.viterbi` searched the plain way, frame by frame over
    every (period, frames since the beat) state: the reference its faster search must match."""
    periods = np.unique(np.round(np.geomspace(max(2.0, period / 1.4), period * 1.4, 40)).astype(np.int64))
    states = [(p, k) for p in range(periods.size) for k in range(periods[p])]
    ratio = periods[None, :] / periods[:, None]
    transition = -300.0 * np.abs(ratio - 1)
    transition -= np.log(np.exp(transition).sum(1, keepdims=True))
    on = np.log(np.clip(strength, 1e-4, 1.0))
    off = np.log(np.clip((1 - strength) / 15, 1e-4, 1.0))
    score = {state: 0.0 for state in states}
    back: list[dict[tuple[int, int], tuple[int, int]]] = []
    for t in range(strength.size):
        came = {(p, k): (p, k - 1) for p, k in states if k > 0}
        for p in range(periods.size):
            came[p, 0] = max(
                ((q, periods[q] - 1) for q in range(periods.size)), key=lambda s: score[s] + transition[s[0], p]
            )
        emit = {(p, k): on[t] if k < max(1, periods[p] / 16) else off[t] for p, k in states}
        score = {s: (score[came[s]] + (transition[came[s][0], s[0]] if s[1] == 0 else 0.0)) + emit[s] for s in states}
        back.append(came)
    state = max(states, key=lambda s: score[s])
    found = []
    for t in range(strength.size - 1, -1, -1):
        if state[1] == 0:
            found.append(t)
        state = back[t][state]
    return beats._refine(np.array(found[::-1]), strength, int(periods[-1]) // 16 + 2)


@pytest.mark.parametrize("seed", range(8))
def test_the_hmm_search_finds_the_most_likely_path_of_all_states(seed: int) -> None:
    rng = np.random.default_rng(seed)
    period = float(rng.uniform(6, 16))
    strength = rng.uniform(0, 0.3, 240)  # no two paths exactly as likely
    strength[rng.integers(0, 240, 30)] = rng.uniform(0.5, 1.0, 30)
    assert beats.viterbi(strength, period).tolist() == _viterbi_state_by_state(strength, period).tolist()


def _bar_features(
    beat_frames: list[int], onsets: dict[int, list[float]], chroma: np.ndarray | None = None
) -> beats.Features:
    """Features with onsets on the beats only: ``onsets`` maps a band group (0: kick drums
    and bass, 4-5: snares and rimshots, 7: hats) to its heights on beats 0, 1, 2... of
    each bar, repeating; the low band is group 0, the flux all groups; flat chroma unless
    given."""
    frames = beat_frames[-1] + 50
    bands = np.zeros((frames, beats.BAND_GROUPS))
    for group, heights in onsets.items():
        for i, f in enumerate(beat_frames):
            bands[f, group] = heights[i % len(heights)]
    return _band_features(bands, chroma)


def _band_features(bands: np.ndarray, chroma: np.ndarray | None = None) -> beats.Features:
    """Features of the onsets of each band group, frame by frame: the low band is group 0,
    the flux all groups; flat chroma unless given."""
    frames = bands.shape[0]
    return beats.Features(
        bands.sum(1), bands[:, 0].copy(), np.ones((frames, 12)) if chroma is None else chroma, frames / beats.FPS, bands
    )


BEAT_FRAMES = list(range(10, 2000, 50))  # 40 beats at 120 BPM


@pytest.mark.parametrize("meter, phase", [(4, 0), (4, 1), (4, 3), (3, 0), (3, 2)])
def test_the_reading_that_starts_bars_on_the_low_onsets_sees_them_all_at_its_first_position(
    meter: int, phase: int
) -> None:
    heights = [1.0 if i == phase else 0.0 for i in range(meter)]
    readings = beats.bar_readings(np.array(BEAT_FRAMES, dtype=float), _bar_features(BEAT_FRAMES, {0: heights}))
    assert [(m, p) for m, p, _ in readings] == [(4, 0), (4, 1), (4, 2), (4, 3), (3, 0), (3, 1), (3, 2)]
    first_position_low = {(m, p): inputs[0] for m, p, inputs in readings}  # group 0 at position 0
    assert max(first_position_low, key=first_position_low.__getitem__) == (meter, phase)
    for m, _, inputs in readings:
        assert inputs.shape == (2 * m * beats.BAND_GROUPS + 2,)  # mean and loudest, then harmony


def test_the_bar_readings_see_what_comes_once_in_a_while_at_its_position() -> None:
    # Hats on every beat, and a crash (group 7 louder) on the first beat of the third bar only.
    features = _bar_features(BEAT_FRAMES, {7: [0.5]})
    features.bands[BEAT_FRAMES[8], 7] = 3.0
    groups = beats.BAND_GROUPS
    for meter, phase, inputs in beats.bar_readings(np.array(BEAT_FRAMES, dtype=float), features):
        means = inputs[: meter * groups].reshape(meter, groups)[:, 7]
        loudest = inputs[meter * groups : 2 * meter * groups].reshape(meter, groups)[:, 7]
        crash = (8 - phase) % meter  # the crash's position in this reading
        assert int(np.argmax(loudest)) == crash
        assert loudest[crash] > 5 * means[crash] > 0  # one bar's crash, diluted in the mean


def test_the_shipped_scorers_take_the_readings_inputs() -> None:
    frames = np.array(BEAT_FRAMES, dtype=float)
    features = _bar_features(BEAT_FRAMES, {0: [1.0, 0.0]})
    shipped = beats.scorers()
    assert sorted(shipped.bar) == sorted(beats.METERS)
    for meter, _, inputs in beats.bar_readings(frames, features):
        assert np.isfinite(beats.Scorers.score(shipped.bar[meter], inputs))
    for inputs in beats.level_inputs(beats.level_readings(frames), features):
        assert np.isfinite(beats.Scorers.score(shipped.level, inputs))


def test_the_readings_of_the_beats_are_shifted_doubled_and_halved() -> None:
    readings = beats.level_readings(np.array([10.0, 60.0, 110.0, 160.0]))
    assert [r.tolist() for r in readings] == [
        [10, 60, 110, 160],
        [35, 85, 135, 185],
        [10, 35, 60, 85, 110, 135, 160],
        [10, 110],
        [60, 160],
        [22.5, 72.5, 122.5, 172.5],
        [47.5, 97.5, 147.5, 197.5],
    ]


def test_the_level_inputs_say_where_a_backbeats_onsets_fall_in_each_reading() -> None:
    # Kick on beats 0, 2, 4..., snare on 1, 3, 5... at 120 BPM.
    features = _bar_features(BEAT_FRAMES, {0: [1.0, 0.0], 4: [0.0, 1.0]})
    readings = beats.level_readings(np.array(BEAT_FRAMES, dtype=float))
    tracked, later, double, half, *_ = beats.level_inputs(readings, features)
    cues = beats.BAND_GROUPS + 1  # inputs come in blocks of one per band group and the flux
    contrast, subdivision, alternation, periodicity, tempo = 0, cues, 2 * cues, 4 * cues, 4 * cues + 5
    assert tracked[contrast] > 0 > later[contrast]  # kicks on the beats, not halfway
    assert half[subdivision + 4] > 0  # read half as fast, the snares fall halfway
    assert tracked[alternation] > 1 and tracked[alternation + 4] > 1  # kick and snare take turns
    assert half[alternation] == pytest.approx(0.0)  # a kick on every beat of that reading
    assert tracked[periodicity + 1] > 0.5 > 0.1 > tracked[periodicity]  # an onset every beat, none halfway
    assert double[periodicity + 1] < 0.1 < double[periodicity + 2]
    assert tracked[tempo : tempo + 2].tolist() == [0.0, 0.0]  # log2(120 / 120) and its square


def test_the_level_inputs_see_an_onset_up_to_three_frames_from_its_beat() -> None:
    # The tracker places a beat within a few frames of its onset: the kicks still count
    # there, and no longer once the beats lie 4 frames (40 ms) away.
    features = _bar_features(BEAT_FRAMES, {0: [1.0]})
    exact, near, far = (
        beats.level_inputs([np.array(BEAT_FRAMES, dtype=float) + shift], features)[0] for shift in (0, 3, 4)
    )
    assert exact[0] > 1  # the kicks' band group, on the beats against halfway
    assert near[0] == exact[0]
    assert far[0] == pytest.approx(0.0)


def test_the_level_inputs_see_a_kick_that_comes_once_a_bar() -> None:
    # A one-drop: kick on the third beat of each bar of 4, chords on every offbeat.
    frames = BEAT_FRAMES[-1] + 50
    bands = np.zeros((frames, beats.BAND_GROUPS))
    bands[BEAT_FRAMES[2::4], 0] = 1.0
    bands[[f + 25 for f in BEAT_FRAMES[:-1]], 5] = 1.0
    features = _band_features(bands)
    tracked, later, *_ = beats.level_inputs(beats.level_readings(np.array(BEAT_FRAMES, dtype=float)), features)
    cues = beats.BAND_GROUPS + 1
    in_fours = 4 * cues + 7  # then bars of 3, one input per cue each
    assert tracked[in_fours] > 3 * tracked[0] > 0  # the kick is in every bar, not diluted over its 4 beats
    assert tracked[in_fours] > 0 > later[in_fours]  # read on the offbeats, the kick falls halfway
    assert tracked[in_fours + 5] < 0 < later[in_fours + 5]  # and the chords on the beats
    assert tracked.shape == (4 * cues + 7 + len(beats.METERS) * cues,)


def test_beats_tracked_on_the_offbeats_move_to_the_kicks() -> None:
    # Kicks on the beats, hats and a bass note halfway between them; the tracker read the
    # offbeats.
    frames = BEAT_FRAMES[-1] + 50
    bands = np.zeros((frames, beats.BAND_GROUPS))
    bands[BEAT_FRAMES, 0] = 1.0
    offbeats = [f + 25 for f in BEAT_FRAMES[:-1]]
    bands[offbeats, 7] = 1.0
    bands[offbeats, 1] = 0.5
    features = _band_features(bands)
    chosen = beats.choose_level(np.array(offbeats, dtype=float), features)
    assert chosen.tolist() == BEAT_FRAMES[1:]


@pytest.mark.parametrize("shift", [12.5, 37.5])
def test_beats_tracked_a_quarter_beat_off_move_to_the_kicks(shift: float) -> None:
    # Kick on every beat, snare on 2 and 4, hats on every sixteenth; the tracker read the
    # beats a sixteenth late (12.5 frames) or early (37.5: a sixteenth before the next).
    frames = BEAT_FRAMES[-1] + 50
    bands = np.zeros((frames, beats.BAND_GROUPS))
    bands[BEAT_FRAMES, 0] = 1.0
    bands[BEAT_FRAMES[1::2], 4] = 1.0
    bands[[f + k * 12 for f in BEAT_FRAMES[:-1] for k in range(4)], 7] = 0.6
    features = _band_features(bands)
    chosen = beats.choose_level(np.array([f + shift for f in BEAT_FRAMES[:-1]]), features)
    assert chosen.tolist() == BEAT_FRAMES[1:]


def test_no_beat_of_a_shifted_reading_falls_after_the_end_of_the_signal() -> None:
    # As above, but the signal ends 10 frames after the last offbeat the tracker read:
    # the kick half a beat later would be 15 frames past its end.
    offbeats = [f + 25 for f in BEAT_FRAMES[:-1]]
    frames = offbeats[-1] + 10
    bands = np.zeros((frames, beats.BAND_GROUPS))
    bands[BEAT_FRAMES[:-1], 0] = 1.0
    bands[offbeats, 7] = 1.0
    bands[offbeats, 1] = 0.5
    features = _band_features(bands)
    chosen = beats.choose_level(np.array(offbeats, dtype=float), features)
    assert chosen.tolist() == BEAT_FRAMES[1:-1]


def test_too_few_beats_to_judge_are_kept_as_tracked() -> None:
    few = np.array(BEAT_FRAMES[: beats.LEVEL_MIN_BEATS - 1], dtype=float)
    features = _bar_features(BEAT_FRAMES, {0: [1.0]})
    assert beats.choose_level(few, features).tolist() == few.tolist()


@pytest.mark.parametrize("meter, phase", [(4, 0), (4, 1), (4, 3), (3, 0), (3, 2)])
def test_downbeats_are_the_beats_that_carry_the_low_onsets(meter: int, phase: int) -> None:
    heights = [1.0 if i == phase else 0.0 for i in range(meter)]
    found = beats.bar_phase(np.array(BEAT_FRAMES, dtype=float), _bar_features(BEAT_FRAMES, {0: heights}))
    assert found == (meter, phase)


@pytest.mark.parametrize("rim", [4, 5, 6])
@pytest.mark.parametrize("phase", [0, 1, 2, 3])
def test_a_one_drops_bar_starts_two_beats_before_its_kick_and_rimshot(rim: int, phase: int) -> None:
    # Reggae's one-drop: nothing on 1, kick and rimshot together on 3, the bass on 2 and
    # 4 (in the kick's band group); the rimshot's band group varies with the kit.
    drop = [1.0 if (i - phase) % 4 == 2 else 0.0 for i in range(4)]
    bass = [0.6 if (i - phase) % 2 == 1 else 0.0 for i in range(4)]
    onsets = {0: [max(k, b) for k, b in zip(drop, bass, strict=True)], rim: drop}
    found = beats.bar_phase(np.array(BEAT_FRAMES, dtype=float), _bar_features(BEAT_FRAMES, onsets))
    assert found == (4, phase)


def test_downbeats_follow_the_chord_changes_when_the_bass_says_nothing() -> None:
    chroma = np.zeros((BEAT_FRAMES[-1] + 50, 12))
    for bar, start in enumerate(BEAT_FRAMES[2::4]):  # a new chord every 4 beats from beat 2
        chroma[start:, :] = 0.0
        chroma[start:, (bar * 5) % 12] = 1.0
    chroma[: BEAT_FRAMES[2], 7] = 1.0  # a pickup of two beats on another chord
    found = beats.bar_phase(np.array(BEAT_FRAMES, dtype=float), _bar_features(BEAT_FRAMES, {7: [1.0]}, chroma))
    assert found == (4, 2)


def test_the_onset_envelope_marks_rises_and_ignores_a_steady_level() -> None:
    flux = np.full(1000, 0.3)
    assert not beats.onset_envelope(flux).any()
    flux[10::50] = 2.0  # onsets on a steady level
    envelope = beats.onset_envelope(flux)
    assert np.flatnonzero(envelope == 1.0).tolist() == list(range(10, 1000, 50))
    assert envelope.max(initial=0.0, where=np.arange(1000) % 50 != 10) < 0.05


def test_a_backbeat_bar_starts_on_its_kick() -> None:
    # From the second beat: kick on 1 (softer on 3), snare on 2 and 4, hats throughout.
    found = beats.bar_phase(
        np.array(BEAT_FRAMES, dtype=float),
        _bar_features(BEAT_FRAMES, {0: [0.0, 1.0, 0.0, 0.5], 4: [1.0, 0.0, 1.0, 0.0], 7: [1.0]}),
    )
    assert found == (4, 1)


def _flux(onsets: dict[int, float], seconds: float = 20.0) -> beats.Features:
    """Features with onsets of the given heights at the given frames, in every band."""
    flux = np.zeros(int(seconds * FPS))
    for frame, height in onsets.items():
        flux[frame] = height
    return beats.Features(
        flux, flux.copy(), np.ones((flux.size, 12)), seconds, np.repeat(flux[:, None], beats.BAND_GROUPS, axis=1)
    )


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


def test_blocks_of_a_frame_or_less_give_features_of_one_length() -> None:
    # A decoder may hand over a few samples at a time (a truncated file's last packets):
    # here a first frame, then a block that completes only one more.
    features = beats.extract([np.zeros(512, np.float32), np.zeros(160, np.float32), np.ones(800, np.float32)])
    assert features.flux.size == features.low.size == features.bands.shape[0] == features.chroma.shape[0]
    assert features.bands.shape[1] == beats.BAND_GROUPS


def test_half_an_hours_features_grow_the_process_by_little_more_than_their_size() -> None:
    # In a fresh process (the peak of this one is whatever earlier tests left): 30 minutes
    # in 4-second blocks. Their features take ~35 MB; features kept as each block's small
    # arrays fragmented the heap, and the process grew by ~0.7 MB a block (~300 MB).
    script = """
import resource, numpy as np, torch
torch.set_num_threads(1)
from dragon.media import beats
block = np.random.default_rng(0).standard_normal(65664).astype(np.float32) * 0.1
beats.extract([block] * 2)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
features = beats.extract(block for _ in range(440))
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024, features.flux.size)
"""
    grown, frames = map(
        int, subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
    )
    assert frames == 1 + 440 * 65664 // beats.HOP  # a frame per hop, centred
    assert grown < 150  # MB


def _sounding_from(frame: int, frames: int = 2000) -> beats.Features:
    """Features of a signal silent before ``frame`` and sounding after it (only the
    loudness, the chroma's sum, matters to :func:`beats.lead_in`)."""
    chroma = np.zeros((frames, 12))
    chroma[frame:] = 1.0
    zeros = np.zeros(frames)
    return beats.Features(zeros, zeros, chroma, frames / FPS, np.zeros((frames, beats.BAND_GROUPS)))


def test_a_beat_is_added_where_the_period_puts_one_before_the_first_and_starts_the_bar_it_falls_on() -> None:
    tracked = np.array(BEAT_FRAMES[1:], dtype=float)  # the first, at frame 10, missed
    added, phase = beats.lead_in(tracked, 4, 3, _sounding_from(0))
    assert added.tolist() == BEAT_FRAMES and phase == 0  # a bar before the first downbeat
    added, phase = beats.lead_in(tracked, 4, 1, _sounding_from(0))
    assert added.tolist() == BEAT_FRAMES and phase == 2


def test_a_beat_just_before_the_file_starts_is_placed_at_its_start() -> None:
    tracked = np.array([f - 14 for f in BEAT_FRAMES[1:]], dtype=float)  # the period puts one at frame -4
    added, _ = beats.lead_in(tracked, 4, 0, _sounding_from(0))
    assert added.tolist() == [0.0, *tracked.tolist()]


def test_no_beat_is_added_in_silence_nor_long_before_the_file_starts() -> None:
    tracked = np.array(BEAT_FRAMES[1:], dtype=float)
    assert beats.lead_in(tracked, 4, 3, _sounding_from(40))[0].tolist() == tracked.tolist()  # silent at 10
    early = np.array([f - 20 for f in BEAT_FRAMES[1:]], dtype=float)  # one would fall at frame -10
    assert beats.lead_in(early, 4, 3, _sounding_from(0))[0].tolist() == early.tolist()
    few = tracked[: beats.LEVEL_MIN_BEATS - 1]
    assert beats.lead_in(few, 4, 3, _sounding_from(0))[0].tolist() == few.tolist()
