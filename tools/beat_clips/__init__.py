"""Labelled clips for training and judging the beat tracker, generated from a seed.

``generate(seed)`` draws a style (rock, four-on-the-floor dance, funk, swung hip-hop,
reggae one-drop, waltz, solo piano, drumless ballad, guitar strumming, breakbeats), a
tempo of 55-190 BPM that may ramp or breathe (rubato), a meter (3/4 or 4/4), a fresh
drum kit and fresh timbres, then arranges bars with pickups, quiet intros, silent
lead-ins, fills, breaks and stops, and passes the mix through a room, EQ, saturation,
noise and a lossy codec, each at random. Labels are exact: the beat times of the score.

The same seed gives the same clip. Seeds are split so that nothing is tuned on the clips
that judge it (the held-out seeds are fixed in benchmarks/beats.py and used nowhere else):
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import av
import numpy as np

from tools.beat_clips import effects, music, sounds
from tools.beat_clips.music import STYLES

TRAINING = range(0, 100_000)  # for fitting the trained scorers (tools/train_beats.py)
DEVELOPMENT = range(100_000, 200_000)  # choices while developing (checkpoints, decoding settings)
TESTS = range(500_000, 600_000)  # the unit and HTTP tests
TOLERANCE = 0.07  # s: a found beat this near a labelled one is a hit (mir_eval's F-measure window)
NO_BEATS = "none"  # the style of clips without a beat: noise, hum, drones, silence


@dataclass(frozen=True)
class Clip:
    audio: np.ndarray  # float32 mono
    rate: int
    beats: np.ndarray  # seconds
    downbeats: np.ndarray  # seconds, a subset of beats
    style: str
    meter: int  # 0 for clips without beats
    tempo: float  # BPM at the first beat
    notes: str  # what was drawn, for reports

    @property
    def duration(self) -> float:
        return self.audio.size / self.rate

    def flac(self) -> bytes:
        """The clip as a 16-bit FLAC file."""
        buffer = io.BytesIO()
        with av.open(buffer, "w", format="flac") as out:
            stream = out.add_stream("flac", rate=self.rate, layout="mono")
            pcm = (np.clip(self.audio, -1, 1) * 32767).astype(np.int16)[None, :]
            frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
            frame.sample_rate = self.rate
            out.mux(stream.encode(frame))
            out.mux(stream.encode(None))
        return buffer.getvalue()


def f_measure(reference: np.ndarray | list[float], estimated: np.ndarray | list[float]) -> float:
    """mir_eval's beat F-measure (a hit is within 70 ms of a labelled beat), how every
    report and training run here scores beats; a clip without beats is right only when
    none are found. mir_eval is in the test and bench extras."""
    import mir_eval

    if len(reference) == 0:
        return 1.0 if len(estimated) == 0 else 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # it warns about beats before 5 s, which it keeps
        return float(mir_eval.beat.f_measure(np.asarray(reference, dtype=float), np.asarray(estimated, dtype=float)))


def offsets(reference: np.ndarray | list[float], estimated: np.ndarray | list[float]) -> np.ndarray:
    """Each found beat's time minus its nearest labelled beat's, for the beats the
    F-measure counts as hits (within 70 ms): negative where the beats come early."""
    ref, est = np.asarray(reference, dtype=float), np.asarray(estimated, dtype=float)
    if ref.size == 0 or est.size == 0:
        return np.zeros(0)
    near = est - ref[np.abs(est[:, None] - ref[None, :]).argmin(1)]
    return near[np.abs(near) <= TOLERANCE]


def style_of(seed: int) -> str:
    """Styles take turns by seed, so any run of seeds is balanced."""
    return STYLES[seed % len(STYLES)]


def generate(seed: int, rate: int = 22050, seconds: float | None = None, style: str | None = None) -> Clip:
    """The clip of ``seed``: ``seconds`` long (default: 20-40 s, drawn) at ``rate`` Hz."""
    rng = np.random.default_rng(seed)
    style = style or style_of(seed)
    seconds = seconds if seconds is not None else float(rng.uniform(20, 40))
    if style == NO_BEATS:
        return _without_beats(rng, rate, seconds)
    band = music.band(rng, style)
    low, high = music.TEMPI[style]
    tempo = float(rng.uniform(low, high))
    notes = [f"{style} {band.meter}/4 {tempo:.0f} BPM"]
    lead_in = float(rng.uniform(0.3, 3.0)) if rng.random() < 0.2 else 0.0
    pickup = int(rng.integers(1, band.meter)) if rng.random() < 0.25 else 0
    intro = int(rng.integers(1, 5)) if rng.random() < 0.25 else 0
    bars = int((seconds - lead_in) * tempo / 60 / band.meter) + 2
    times = _beat_times(rng, style, tempo, pickup + bars * band.meter + 1, notes) + lead_in
    plan = _plan(rng, band, bars, intro, notes)
    mix, last = _render(rng, rate, band, times, pickup, bars, plan, seconds)
    if lead_in:
        notes.append(f"lead-in {lead_in:.1f} s")
    if pickup:
        notes.append(f"pickup {pickup}")
    mix = _master(mix, rng, rate, notes)
    beats = times[: pickup + last * band.meter + 1] if plan["ending"] == "final" else times
    beats = beats[beats < seconds - 0.05]
    positions = (np.arange(beats.size) - pickup) % band.meter
    return Clip(mix.astype(np.float32), rate, beats, beats[positions == 0], style, band.meter, tempo, ", ".join(notes))


def _beat_times(rng: np.random.Generator, style: str, tempo: float, count: int, notes: list[str]) -> np.ndarray:
    """Beat times from 0 s: a steady tempo, a ramp of up to 25%, or rubato (a smooth random
    walk of the tempo, wider for a solo piano or a ballad), maybe slowing at the end."""
    index = np.arange(count)
    bpm = np.full(count, tempo)
    free = style in music.DRUMLESS
    if rng.random() < (0.15 if not free else 0.05):
        change = rng.choice([-1, 1]) * rng.uniform(0.05, 0.25)
        bpm *= 1 + change * index / count
        notes.append(f"ramp to {tempo * (1 + change):.0f} BPM")
    wander = rng.uniform(0.03, 0.10) if free and rng.random() < 0.7 else rng.uniform(0.0, 0.015)
    if wander > 0.02:
        notes.append(f"rubato {wander:.2f}")
    walk = np.convolve(rng.standard_normal(count + 8), np.hanning(8), mode="same")[4:-4][:count]
    bpm *= np.exp(wander * walk / (walk.std() + 1e-9))
    if free and rng.random() < 0.4:
        bpm[-8:] *= np.linspace(1.0, rng.uniform(0.7, 0.9), 8)[-min(8, count):]
    bpm = np.clip(bpm, 50, 200)
    return np.concatenate(([0.0], np.cumsum(60.0 / bpm[:-1])))


def _plan(rng: np.random.Generator, band: music.Band, bars: int, intro: int, notes: list[str]) -> dict:
    """Which bars are quiet intro, fills, breaks (drums out) or stops, and how it ends."""
    drummed = bool(band.drums)
    phrase = int(rng.choice([4, 8]))
    fills = {b for b in range(phrase - 1, bars, phrase) if drummed and rng.random() < 0.5}
    breaks = set()
    if rng.random() < 0.25 and bars > intro + 6:
        start = int(rng.integers(intro + 2, bars - 3))
        breaks = set(range(start, start + int(rng.integers(1, 3))))
        notes.append("break")
    stops = {int(rng.integers(intro + 1, bars - 1))} if rng.random() < 0.1 and bars > intro + 3 else set()
    if intro:
        notes.append(f"quiet intro {intro} bars")
    if fills:
        notes.append("fills")
    ending = "final" if rng.random() < 0.4 else "cut"
    parts = ["drums", "bass", "comp"] if drummed else ["bass", "comp"]
    return {"intro": intro, "fills": fills, "breaks": breaks, "stops": stops, "ending": ending,
            "crashes": {b for b in range(intro, bars, phrase) if drummed and rng.random() < 0.6},
            "intro_parts": set(rng.choice(parts, size=int(rng.integers(1, len(parts))), replace=False))}


def _render(rng: np.random.Generator, rate: int, band: music.Band, times: np.ndarray, pickup: int, bars: int,
            plan: dict, seconds: float) -> tuple[np.ndarray, int]:
    """The mix, and the bar the music ends on."""
    total = int(seconds * rate)
    stems = {name: np.zeros(total + 4 * rate) for name in ("drums", "bass", "comp", "lead")}
    kit = sounds.kit(rng, rate)
    families = {
        "bass": rng.choice(["bass", "synth_bass", "pluck"]) if band.style not in ("piano",) else "piano",
        "comp": _comp_family(rng, band),
        "lead": rng.choice(["lead", "bell", "pluck", "epiano", "strings"]) if band.style != "piano" else "piano",
    }
    voices = {part: sounds.instrument(rng, rate, str(family)) for part, family in families.items()}
    swing = rng.uniform(0.55, 0.68) if band.style == "hiphop" or rng.random() < 0.1 else 0.5
    swing_unit = 0.5 if band.style == "hiphop" and band.subdivision == 0.25 else 1.0
    jitter = rng.uniform(0.0, 0.012) if band.style not in music.DRUMLESS else rng.uniform(0.005, 0.02)
    harmony = music.chords(rng, bars + 1)
    key_tones = sorted({t + 12 * o for c in harmony for h in c for t in h.tones for o in (0, 1)})
    last = bars - 1 if plan["ending"] == "final" else bars
    levels = {"drums": 0.0, "comp": -rng.uniform(3, 12), "bass": -rng.uniform(2, 9), "lead": -rng.uniform(4, 14)}  # dB
    if not band.drums:  # the accompaniment leads instead
        levels["comp"] = 0.0

    period = float(np.diff(times).mean())

    def when(beat: float) -> float:
        whole = int(np.floor(beat))
        fraction = beat - whole
        cell = np.floor(fraction / swing_unit) * swing_unit
        inside = (fraction - cell) / swing_unit
        inside = inside * 2 * swing if inside <= 0.5 else 2 * swing - 1 + (inside - 0.5) * 2 * (1 - swing)
        beat = whole + cell + inside * swing_unit
        return float(np.interp(beat, np.arange(times.size), times, right=times[-1] + (beat - times.size + 1) * period))

    def add(stem: str, start: float, sample: np.ndarray, level: float) -> None:
        at = int((start + rng.normal(0, jitter)) * rate)
        if 0 <= at < total:
            piece = sample[: stems[stem].size - at]
            stems[stem][at : at + piece.size] += level * piece

    for bar in range(-1, last + 1):
        first = pickup + bar * band.meter  # global index of the bar's first beat
        if bar == -1 and not pickup:
            continue
        quiet = bar < plan["intro"]
        level = 10 ** (-rng.uniform(10, 25) / 20) if quiet else 1.0
        playing = {"drums", "bass", "comp", "lead"} if not quiet else plan["intro_parts"]
        if bar in plan["breaks"]:
            playing = playing - {"drums"} if band.drums else playing - {"comp", "lead"}
        if bar == last and plan["ending"] == "final":
            events = _final(band, harmony[bar][0])
        elif bar == -1:
            events = _pickup(rng, band, harmony[0][0], pickup)
        else:
            events = []
            if "drums" in playing and band.drums:
                events += music.drum_bar(rng, band, bar in plan["fills"], bar in plan["crashes"])
            events += [e for e in music.tone_bar(rng, band, harmony[bar], key_tones) if e.part in playing]
        stopped = {first + int(rng.integers(1, band.meter))} if bar in plan["stops"] else set()
        for event in events:
            beat = first + event.position
            if int(beat) in stopped:
                continue
            accent = 1 + band.accent * (event.position == 0)
            velocity = float(np.clip(event.velocity * accent * rng.uniform(0.9, 1.1), 0.05, 1.3))
            if isinstance(event, music.Drum):
                add("drums", when(beat), kit[event.piece](velocity), level)
                continue
            held = when(beat + event.length) - when(beat)
            onset = when(beat)
            if band.comp == "strum" and event.part == "comp":
                order = sorted(harmony[max(bar, 0)][0].tones)
                rank = order.index(event.pitch) if event.pitch in order else 0
                rank = rank if event.position % 1 == 0 else len(order) - 1 - rank  # up strokes
                onset += rank * rng.uniform(0.004, 0.012)
            note = voices[event.part](440.0 * 2 ** ((event.pitch - 69) / 12), held, velocity)
            add(event.part, onset, note, level)
    mix = np.zeros(total)
    for name, stem in stems.items():
        loudness = np.sqrt(np.mean(stem[:total] ** 2))
        if loudness > 0:
            mix += stem[:total] * 10 ** (levels[name] / 20) / loudness
    return mix, last


def _comp_family(rng: np.random.Generator, band: music.Band) -> str:
    if band.style == "piano":
        return "piano"
    if band.comp == "strum":
        return "guitar"
    if band.comp == "power":
        return "power"
    if band.comp in ("pad",):
        return str(rng.choice(["pad", "strings", "organ"]))
    return str(rng.choice(["piano", "epiano", "organ", "pluck", "guitar"]))


def _pickup(rng: np.random.Generator, band: music.Band, chord: music.Chord, beats: int) -> list:
    """A note or a drum hit on each beat before the first bar."""
    first = band.meter - beats
    if band.drums and rng.random() < 0.5:
        return [music.Drum(str(rng.choice(["snare", "tom_high", "tom_low"])), float(first + i), 0.8) for i in range(beats)]
    return [music.Tone("bass" if rng.random() < 0.5 else "lead", chord.root + (12 if i % 2 else 0) + 12, float(first + i), 0.8, 0.8)
            for i in range(beats)]


def _final(band: music.Band, chord: music.Chord) -> list:
    """The last chord, rung out from the downbeat."""
    out: list = [music.Tone("bass", chord.root, 0.0, 2 * band.meter, 1.0)]
    out += [music.Tone("comp", p, 0.0, 2 * band.meter, 0.9) for p in chord.tones]
    if band.drums:
        out += [music.Drum("kick", 0.0, 1.0), music.Drum("crash", 0.0, 1.0)]
    return out


def _master(mix: np.ndarray, rng: np.random.Generator, rate: int, notes: list[str]) -> np.ndarray:
    """Room, EQ, saturation, noise, level and codec, each with its own chance."""
    if rng.random() < 0.5:
        mix = effects.reverb(mix, rng, rate)
        notes.append("reverb")
    if rng.random() < 0.3:
        mix = effects.equalise(mix, rng, rate)
        notes.append("eq")
    mix = mix / (np.abs(mix).max() + 1e-9)
    if rng.random() < 0.3:
        drive = rng.uniform(1.5, 5)
        mix = np.tanh(drive * mix) / np.tanh(drive)
        notes.append("saturated")
    if rng.random() < 0.4:
        mix = effects.noise(mix, rng, rate)
        notes.append("noise")
    mix = mix / (np.abs(mix).max() + 1e-9) * 10 ** (-rng.uniform(0.5, 30) / 20)
    if rng.random() < 0.25:
        mix = effects.codec(mix, rng, rate)
        notes.append("codec")
    return mix


def _without_beats(rng: np.random.Generator, rate: int, seconds: float) -> Clip:
    """Noise, hum, a drone drifting between chords at random times, or near-silence."""
    n = int(seconds * rate)
    kind = str(rng.choice(["noise", "drone", "silence"]))
    quiet = np.zeros(n)
    if kind == "drone":
        voice = sounds.instrument(rng, rate, str(rng.choice(["pad", "strings", "organ"])))
        start = 0.0
        while start < seconds:
            length = float(rng.uniform(2.5, 7.0))
            for pitch in rng.choice(np.arange(48, 72), size=3, replace=False):
                note = voice(440.0 * 2 ** ((pitch - 69) / 12), length, 0.6)
                at = int(start * rate)
                quiet[at : at + note.size] += note[: n - at]
            start += length * rng.uniform(0.6, 1.0)
    mix = effects.noise(quiet + 1e-3 * rng.standard_normal(n), rng, rate) if kind != "silence" else quiet
    if kind == "silence" or rng.random() < 0.5:
        mix = mix + 10 ** (-rng.uniform(1, 4)) * rng.standard_normal(n)
    mix = mix / (np.abs(mix).max() + 1e-9) * 10 ** (-rng.uniform(0.5, 30) / 20)
    return Clip(mix.astype(np.float32), rate, np.zeros(0), np.zeros(0), NO_BEATS, 0, 0.0, kind)
