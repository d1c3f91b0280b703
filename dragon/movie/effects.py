"""How each of the 11 SXML effect types moves its media over time.

The record names the effects but does not describe them (notes §1.4, §8), so each one
here is a choice, written down in docs/sxml.md. An effect gives every visible medium a
transform relative to the medium's *base rectangle* (where its adapter puts it), an
opacity and optionally a reveal mask; :mod:`dragon.movie.scene` draws them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass

import torch

from dragon.movie.canvas import Canvas, Matrix, rotation, scaling, translate
from dragon.sxml import schema

EFFECT_TYPES = schema.EFFECT_TYPES
MULTI = ("diving", "rotator", "sliding", "square")  # effects that show their media one after another
ZOOM = 1.2  # how far kenburns zooms: media are decoded with this much detail to spare
TRANSITION = 0.2  # share of a medium's slot spent arriving, in multi-media effects

Mask = Callable[[Canvas], torch.Tensor]


@dataclass
class Pose:
    """One medium as an effect shows it at one instant."""

    index: int  # which medium
    motion: Matrix  # applied on top of the medium's base rectangle, in screen coordinates
    _: KW_ONLY
    alpha: float = 1.0
    mask: Mask | None = None
    frame: bool = False  # draw a white border around it (square)


def poses(
    kind: str, slots: list[tuple[float, float]], t: float, direction: str | None, cameramove: str | None
) -> list[Pose]:
    """The media visible at time ``t``; ``slots`` are each medium's (start, duration)."""
    index = _current(slots, t)
    start, duration = slots[index]
    p = _progress(t, start, duration)
    single = _SINGLE.get(kind)
    if single is not None:
        return [single(index, p, direction, cameramove)]
    shown = _MULTI[kind](index, p, len(slots))
    if index > 0 and p < TRANSITION:  # the previous medium stays underneath while this one arrives
        return [_MULTI[kind](index - 1, 1.0, len(slots))[-1], *shown]
    return shown


def _current(slots: list[tuple[float, float]], t: float) -> int:
    for i, (start, duration) in enumerate(slots):
        if t < start + duration:
            return i
    return len(slots) - 1


def _progress(t: float, start: float, duration: float) -> float:
    return min(1.0, max(0.0, (t - start) / duration)) if duration > 0 else 1.0


def _ease(p: float) -> float:
    return p * p * (3 - 2 * p)


def _pan_vector(index: int, direction: str | None, cameramove: str | None) -> tuple[float, float]:
    named = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}
    for value in (cameramove, direction):
        if value in named:
            return named[value]
    # No direction given: vary the diagonal from one picture to the next.
    return [(0.7, 0.5), (-0.7, 0.5), (-0.7, -0.5), (0.7, -0.5)][index % 4]


def kenburns(index: int, p: float, direction: str | None, cameramove: str | None) -> Pose:
    """A slow zoom (in for ``positive``, out for ``negative``) with a pan that never
    uncovers the screen edge."""
    zoom_in = direction != "negative"
    z = 1 + (ZOOM - 1) * (p if zoom_in else 1 - p)
    vx, vy = _pan_vector(index, direction, cameramove)
    slack = (z - 1) * 0.9
    return Pose(index, translate(vx * slack * 1.7, vy * slack) @ scaling(z))


def none(index: int, p: float, direction: str | None, cameramove: str | None) -> Pose:
    return Pose(index, torch.eye(3, dtype=torch.float64))


def flower(index: int, p: float, direction: str | None, cameramove: str | None) -> Pose:
    """Opens like a flower: grows and unwinds from a small, turned, transparent start."""
    q = _ease(min(1.0, p / 0.35))
    return Pose(index, rotation((1 - q) * math.radians(40)) @ scaling(0.3 + 0.7 * q + 0.05 * p), alpha=q)


def panel(index: int, p: float, direction: str | None, cameramove: str | None) -> Pose:
    """A panel sliding past the camera: a steady sideways travel across an enlarged picture."""
    vx, vy = _pan_vector(index, direction, cameramove) if (direction or cameramove) else (1.0, 0.0)
    return Pose(index, translate(-vx * (p - 0.5) * 0.4, -vy * (p - 0.5) * 0.2) @ scaling(1.15))


def explode(index: int, p: float, direction: str | None, cameramove: str | None) -> Pose:
    """Holds, then bursts towards the viewer and vanishes in the last third."""
    q = max(0.0, (p - 0.67) / 0.33)
    return Pose(index, scaling(1 + 0.05 * p + 0.9 * q * q), alpha=1 - q)


def rectangles(index: int, p: float, direction: str | None, cameramove: str | None) -> Pose:
    """Revealed by a grid of rectangles growing from their centres, one after another."""
    q = min(1.0, p / 0.4)

    def mask(canvas: Canvas) -> torch.Tensor:
        x, y = canvas.xy
        cols, rows = 4, 3
        u = (x / canvas.aspect + 1) / 2 * cols
        v = (y + 1) / 2 * rows
        cell = u.floor() + v.floor() * cols
        delay = (cell * 7 % (cols * rows)) / (cols * rows) * 0.6  # a scattered order
        grow = ((q - delay) / 0.4).clamp(0, 1)
        du, dv = (u - u.floor() - 0.5).abs() * 2, (v - v.floor() - 0.5).abs() * 2
        return ((du <= grow) & (dv <= grow)).to(torch.float32)

    return Pose(index, scaling(1 + 0.04 * p), mask=None if q >= 1 else mask)


def slice_(index: int, p: float, direction: str | None, cameramove: str | None) -> Pose:
    """Revealed by vertical slices dropping in one after another."""
    q = min(1.0, p / 0.35)

    def mask(canvas: Canvas) -> torch.Tensor:
        x, y = canvas.xy
        slices = 8
        k = ((x / canvas.aspect + 1) / 2 * slices).floor()
        reach = ((q * (slices + 3) - k) / 3).clamp(0, 1) * 2 - 1  # how far down each slice has come
        return (y <= reach).to(torch.float32)

    return Pose(index, torch.eye(3, dtype=torch.float64), mask=None if q >= 1 else mask)


def diving(index: int, p: float, count: int) -> list[Pose]:
    """Each medium rushes in from the distance, then drifts slowly closer."""
    q = _ease(min(1.0, p / TRANSITION))
    return [Pose(index, scaling(0.2 + 0.8 * q + 0.06 * p), alpha=q)]


def rotator(index: int, p: float, count: int) -> list[Pose]:
    """Each medium swings in around the vertical axis, like a turning card."""
    q = _ease(min(1.0, p / TRANSITION))
    turn = math.cos((1 - q) * math.pi / 2)
    return [Pose(index, scaling(max(turn, 1e-3), 1.0) @ scaling(1 + 0.04 * p))]


def sliding(index: int, p: float, count: int) -> list[Pose]:
    """Each medium slides in from the right over the previous one."""
    q = _ease(min(1.0, p / TRANSITION))
    return [Pose(index, translate((1 - q) * 4.0, 0.0))]


def square(index: int, p: float, count: int) -> list[Pose]:
    """Each medium framed in a white-bordered square, gently turning; the square
    drops in from above."""
    q = _ease(min(1.0, p / TRANSITION))
    tilt = math.radians(3) * math.sin(math.pi * (p + index))
    return [Pose(index, translate(0.0, (1 - q) * -2.2) @ rotation(tilt) @ scaling(0.8), frame=True)]


_SINGLE = {
    "none": none,
    "kenburns": kenburns,
    "flower": flower,
    "panel": panel,
    "explode": explode,
    "rectangles": rectangles,
    "slice": slice_,
}
_MULTI = {"diving": diving, "rotator": rotator, "sliding": sliding, "square": square}
