"""What generated clips play: keys, chord progressions and, per style, the bar patterns of
drums, bass, accompaniment and melody.

A pattern is a list of events at positions counted in beats from the start of the bar.
Styles differ in what marks the bar: a rock kick on 1, a four-on-the-floor kick that marks
nothing (the harmony does), a reggae one-drop on 3 with the bass resting on 1, a waltz's
oom-pah-pah, a piano's left hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

STYLES = ("rock", "dance", "funk", "hiphop", "reggae", "waltz", "piano", "ballad", "guitar", "breaks")
DRUMLESS = ("piano", "ballad")
TEMPI = {  # BPM range per style; all of them together span 55-190
    "rock": (80, 175), "dance": (100, 150), "funk": (85, 125), "hiphop": (70, 100), "reggae": (60, 95),
    "waltz": (84, 190), "piano": (55, 110), "ballad": (55, 95), "guitar": (70, 150), "breaks": (85, 178),
}
MAJOR, MINOR = (0, 2, 4, 5, 7, 9, 11), (0, 2, 3, 5, 7, 8, 10)
PROGRESSIONS = (  # scale degrees, from 0
    (0, 4, 5, 3), (0, 3, 4, 3), (0, 5, 3, 4), (1, 4, 0, 0), (5, 3, 0, 4), (0, 6, 5, 4), (0, 3, 0, 4),
    (0, 0, 3, 0, 4, 3, 0, 4), (0, 2, 3, 4), (0, 5, 1, 4), (3, 4, 2, 5),
)


@dataclass(frozen=True)
class Drum:
    piece: str
    position: float  # beats from the start of the bar
    velocity: float


@dataclass(frozen=True)
class Tone:
    part: str  # "bass", "comp" or "lead"
    pitch: int  # MIDI
    position: float
    length: float  # beats held
    velocity: float


@dataclass
class Chord:
    root: int  # MIDI of the bass octave
    tones: tuple[int, ...]  # MIDI, voiced around middle C


@dataclass
class Band:
    """The choices one clip keeps from start to end."""

    style: str
    meter: int
    drums: dict[str, list[float]]
    bass: str
    comp: str
    subdivision: float  # hats and arpeggios: 0.5 (eighths), 0.25 (sixteenths) or 1/3
    accent: float  # how much louder beat 1 is played
    lead: list[float] = field(default_factory=list)  # melody rhythm, positions in the bar
    riff: list[tuple[float, int]] = field(default_factory=list)  # a bass line: (position, semitones over the root)
    hits: list[float] = field(default_factory=list)  # the accompaniment's rhythm where it has one of its own


def chords(rng: np.random.Generator, bars: int) -> list[list[Chord]]:
    """Per bar, the chords in its halves (one or two), from a progression in a random key
    changing every bar, every two bars or twice a bar."""
    key = int(rng.integers(28, 40))
    scale = MAJOR if rng.random() < 0.6 else MINOR
    progression = PROGRESSIONS[rng.integers(len(PROGRESSIONS))]
    rhythm = rng.choice(["bar", "two bars", "half bar"], p=[0.7, 0.15, 0.15])
    sevenths = rng.random() < 0.3

    def chord(degree: int) -> Chord:
        steps = [degree, degree + 2, degree + 4] + ([degree + 6] if sevenths else [])
        pitches = [key + 12 * (s // 7) + scale[s % 7] for s in steps]
        inversion = int(rng.integers(len(pitches)))
        voiced = sorted(p + 24 + (12 if i < inversion else 0) for i, p in enumerate(pitches))
        return Chord(pitches[0], tuple(voiced))

    out = []
    for bar in range(bars):
        if rhythm == "two bars":
            out.append([chord(progression[(bar // 2) % len(progression)])])
        elif rhythm == "half bar":
            out.append([chord(progression[(2 * bar) % len(progression)]), chord(progression[(2 * bar + 1) % len(progression)])])
        else:
            out.append([chord(progression[bar % len(progression)])])
    return out


def band(rng: np.random.Generator, style: str) -> Band:
    """The patterns of ``style``, drawn from its usual variants."""
    def pick(*options):
        return options[rng.integers(len(options))]

    meter = 3 if style == "waltz" or (style in ("piano", "ballad", "guitar") and rng.random() < 0.35) else 4
    subdivision = pick(0.5, 0.25) if style not in ("waltz", "piano", "ballad") else pick(0.5, 1.0, 1 / 3)
    accent = rng.uniform(0.0, 0.35)
    if style == "rock":
        drums = {"kick": pick([0, 2], [0, 2.5], [0, 1.5, 2], [0, 0.5, 2, 2.5], [0, 2, 2.5]), "snare": [1, 3],
                 pick("hat", "ride", "open"): _grid(4, pick(0.5, 0.25, 1.0))}
        bass, comp = pick("root", "eighths", "follow"), pick("power", "beats", "pad", "strum")
    elif style == "dance":
        drums = {"kick": [0, 1, 2, 3], pick("snare", "rim"): [1, 3], "open": [0.5, 1.5, 2.5, 3.5]}
        if rng.random() < 0.6:
            drums["hat"] = _grid(4, 0.25)
        bass, comp = pick("offbeat", "eighths", "root"), pick("pad", "stabs", "offbeats")
    elif style == "funk":
        drums = {"kick": pick([0, 0.75, 2.5], [0, 1.75, 2.5], [0, 0.5, 1.75, 2.75], [0, 2.25, 2.75]), "snare": [1, 3],
                 "hat": _grid(4, 0.25), "ghost": [x for x in _grid(4, 0.25) if rng.random() < 0.25 and x % 1]}
        bass, comp = "syncopated", pick("scratch", "stabs")
        subdivision = 0.25
    elif style == "hiphop":
        drums = {"kick": pick([0, 1.75, 2.5], [0, 0.75, 2.25], [0, 2.5, 2.75]), pick("snare", "rim"): [1, 3],
                 "hat": _grid(4, pick(0.5, 0.25))}
        bass, comp = pick("follow", "root"), pick("epiano", "stabs", "pad")
    elif style == "reggae":
        drums = {"kick": [2], "rim": [2], "hat": _grid(4, pick(0.5, 1 / 3))}
        bass, comp = "reggae", "offbeats" if rng.random() < 0.3 else "skank"
    elif style == "waltz":
        drums = {"kick": [0], "hat": [1, 2]} if rng.random() < 0.5 else {}
        bass, comp = "root", "oompah"
    elif style == "guitar":
        drums = {"shaker": _grid(meter, 0.5)} if rng.random() < 0.4 else {}
        bass, comp = pick("root", "alternating"), "strum"
        subdivision = 0.5
    elif style == "breaks":
        drums = {"kick": pick([0, 0.5, 2.25, 2.5], [0, 2.5], [0, 1.5, 2.75], [0, 0.75, 2.5]),
                 "snare": pick([1, 3], [1, 1.75, 3, 3.75], [1, 2.75, 3]), "hat": _grid(4, 0.5)}
        if rng.random() < 0.4:
            drums["ride"] = _grid(4, 1.0)
        bass, comp = pick("root", "follow"), pick("pad", "stabs")
    else:  # piano, ballad: no drums
        drums = {}
        bass = pick("root", "alternating", "octaves")
        comp = pick("arpeggio", "beats")  # without drums, something has to mark every beat
    lead = sorted({float(x) for x in rng.choice(_grid(meter, 0.5), size=int(rng.integers(2, 2 * meter)), replace=False)})
    return Band(style, meter, drums, bass, comp, subdivision, accent, lead if rng.random() < 0.5 else [],
                _riff(rng, bass, meter), _hits(rng, comp, meter))


def _riff(rng: np.random.Generator, kind: str, meter: int) -> list[tuple[float, int]]:
    """A bar-long bass line that repeats, as bass lines do: funk's starts on the one,
    reggae's rests on it."""
    if kind == "syncopated":
        positions = [0.0] + [x for x in _grid(meter, 0.25)[1:] if rng.random() < 0.3]
        return [(x, int(rng.choice([0, 0, 7, 12, 10])) if x else 0) for x in positions]
    if kind == "reggae":
        positions = [x for x in _grid(meter, 0.5)[1:] if rng.random() < 0.6] or [1.0]
        return [(x, int(rng.choice([0, 3, 5, 7]))) for x in positions]
    return []


def _hits(rng: np.random.Generator, kind: str, meter: int) -> list[float]:
    """A bar-long accompaniment rhythm that repeats: stabs, scratches, strums."""
    if kind == "stabs":
        if rng.random() < 0.3:
            return [0.0, 1.5, 2.5]
        return sorted({0.0} | {float(x) for x in rng.choice(_grid(meter, 0.25), size=3, replace=False)})
    if kind == "scratch":
        return [x for x in _grid(meter, 0.25) if rng.random() < 0.6 or x == 0]
    if kind == "strum":
        return [x for x in _grid(meter, 0.5) if x % 1 == 0 or rng.random() < 0.7]
    return []


def _grid(beats: int, step: float) -> list[float]:
    return [round(i * step, 4) for i in range(int(round(beats / step)))]


def drum_bar(rng: np.random.Generator, band: Band, fill: bool, crash: bool) -> list[Drum]:
    """One bar of drums; a fill replaces its last beat or two with snare and tom notes."""
    out = []
    fill_from = band.meter - (1 if rng.random() < 0.6 else 2) if fill else band.meter
    for piece, positions in band.drums.items():
        for position in positions:
            if position >= fill_from or (rng.random() < 0.04 and position):  # fills, and a few notes left out
                continue
            velocity = rng.uniform(0.75, 1.0) * (1 if position % 1 == 0 else rng.uniform(0.55, 0.9))
            if piece == "ghost":
                piece, velocity = "snare", rng.uniform(0.1, 0.3)
            out.append(Drum(piece, position, velocity))
    if fill:
        step = rng.choice([0.25, 0.5, 1 / 3])
        pieces = rng.choice(["snare", "tom_high", "tom_low"], size=int(round((band.meter - fill_from) / step)))
        out += [Drum(str(p), fill_from + i * step, rng.uniform(0.6, 1.0)) for i, p in enumerate(pieces)]
    if crash:
        out.append(Drum("crash", 0.0, rng.uniform(0.6, 1.0)))
    return out


def tone_bar(rng: np.random.Generator, band: Band, halves: list[Chord], scale_tones: list[int]) -> list[Tone]:
    """One bar of bass, accompaniment and melody over its chords."""
    meter = band.meter
    half = meter / len(halves)

    def at(position: float) -> Chord:
        return halves[min(int(position // half), len(halves) - 1)]

    out = [Tone("bass", p, pos, length, v) for p, pos, length, v in _bass(rng, band, at, meter)]
    out += [Tone("comp", p, pos, length, v) for p, pos, length, v in _comp(rng, band, at, meter)]
    for position in band.lead:
        if rng.random() < 0.85:
            chord_tone = position % 1 == 0 and rng.random() < 0.7
            pitch = int(rng.choice(at(position).tones)) + 12 if chord_tone else int(rng.choice(scale_tones))
            out.append(Tone("lead", pitch, position, rng.uniform(0.3, 1.0), rng.uniform(0.5, 0.9)))
    return out


def _bass(rng, band: Band, at, meter: int) -> list[tuple[int, float, float, float]]:
    root = lambda position: at(position).root  # noqa: E731
    kind = band.bass
    if kind == "root":
        return [(root(0), 0.0, meter * 0.9, 1.0)] + ([(root(meter / 2), meter / 2, meter / 2 * 0.9, 0.9)] if meter == 4 and rng.random() < 0.5 else [])
    if kind == "alternating":
        return [(root(b) + (7 if b % 2 else 0), float(b), 0.9, 0.9 if b else 1.0) for b in range(0, meter, 1 if meter == 3 else 2)] if meter == 4 else [(root(0), 0.0, 2.5, 1.0)]
    if kind == "octaves":
        return [(root(0), 0.0, 1.5, 1.0), (root(0) + 12, 1.0, 1.0, 0.7)] + ([(root(2) + 7, 2.0, 1.5, 0.8)] if meter == 4 else [])
    if kind == "eighths":
        return [(root(x), x, 0.45, 1.0 if x == 0 else 0.8) for x in _grid(meter, 0.5)]
    if kind == "offbeat":
        return [(root(x), x, 0.4, 0.9) for x in _grid(meter, 0.5) if x % 1]
    if kind == "follow":
        return [(root(x), float(x), 0.9, 1.0 if x == 0 else 0.85) for x in band.drums.get("kick", [0])]
    # syncopated (funk) or reggae: the band's riff, a note left out now and then
    length = 0.2 if kind == "syncopated" else 0.4
    return [(root(x) + step, x, length, 1.0 if x == 0 else 0.8) for x, step in band.riff if x == 0 or rng.random() > 0.08]


def _comp(rng, band: Band, at, meter: int) -> list[tuple[int, float, float, float]]:
    kind = band.comp
    if kind in ("pad", "power"):
        return [(p, 0.0, meter * 0.95, 0.8) for p in at(0).tones[: 3 if kind == "power" else None]]
    if kind == "beats":
        return [(p, float(b), 0.9, 0.8 if b else 0.9) for b in range(meter) for p in at(b).tones]
    if kind == "oompah":
        return [(p, float(b), 0.7, 0.7) for b in range(1, meter) for p in at(b).tones]
    if kind in ("offbeats", "skank"):
        positions = [x for x in _grid(meter, 0.5) if x % 1] if kind == "offbeats" else [1.0, 3.0]
        return [(p, x, 0.25, 0.8) for x in positions for p in at(x).tones]
    if band.hits:  # stabs, scratch, strum
        length = {"stabs": 0.3, "scratch": 0.1, "strum": 0.5}[kind]
        kept = [x for x in band.hits if x == 0 or rng.random() > 0.08]
        return [(p, x, length, 0.9 if x % 1 == 0 else 0.65) for x in kept for p in at(x).tones]
    if kind == "epiano":
        return [(p, x, 1.2, 0.75) for x in (0.0, 1.5, 2.75) if x < meter for p in at(x).tones]
    # arpeggio: the chord broken over the bar
    out = []
    for i, x in enumerate(_grid(meter, band.subdivision)):
        tones = at(x).tones
        out.append((tones[i % len(tones)] if i % 4 != 3 else tones[1 % len(tones)], x, band.subdivision * 2, 0.75))
    return out
