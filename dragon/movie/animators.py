"""Animators (notes §1.10): transforms of a node's layer over the animator's time.

Screen coordinates as in :mod:`dragon.movie.canvas` (x in [-aspect, aspect], y down);
SXML's own y axis points up, so custom key positions are flipped. Depth (z) becomes a
perspective scale 1 / (1 - z): z = 0.1 brings a node about 11% closer.
"""

from __future__ import annotations

import math

import torch

from dragon.movie.canvas import Matrix, about, rotation, scaling, translate
from dragon.movie.transitions import direction_vector
from dragon.sxml import Node, schema

ANIMATOR_TYPES = schema.ANIMATOR_TYPES


def matrix(node: Node, t: float, centre: tuple[float, float], aspect: float) -> Matrix:
    """The animator's transform at movie time ``t``, about the node's ``centre``.
    Before its time it holds its first pose, after it its last."""
    p = 0.0 if node.duration <= 0 else min(1.0, max(0.0, (t - node.start) / node.duration))
    if node.attrs.get("mode") == "quadratic":
        p = p * p * (3 - 2 * p)
    kind = node.attrs.get("type", "custom")
    dx, dy = direction_vector(node.attrs.get("direction"), default=(-1.0, 0.0))
    across = (dx * 2 * aspect, dy * 2)  # far enough to leave the screen
    if kind == "slide":
        return translate(across[0] * (p - 0.5), across[1] * (p - 0.5))
    if kind == "slide-in":
        return translate(-across[0] * (1 - p), -across[1] * (1 - p))
    if kind == "slide-out":
        return translate(across[0] * p, across[1] * p)
    if kind in ("rot-in", "rot-out"):
        turned = (1 - p) if kind == "rot-in" else p
        angle = math.radians(node.number("angle", 90.0)) * turned
        return about(rotation(angle) @ scaling(max(1 - turned, 1e-3)), *centre)
    if kind == "grow":
        z = node.number("growStart", 0.0) + (node.number("growEnd", 0.1) - node.number("growStart", 0.0)) * p
        return about(scaling(_depth(z)), *centre)
    return _custom(node, t - node.start, centre)


def _depth(z: float) -> float:
    return 1.0 / max(0.05, 1.0 - z)


def _custom(node: Node, local: float, centre: tuple[float, float]) -> Matrix:
    """Keys interpolated linearly; within a key: scale, then pos, orient and rot."""
    keys = sorted(node.find("key"), key=lambda k: k.number("time", 0.0))
    if not keys:
        return torch.eye(3, dtype=torch.float64)
    times = [k.number("time", 0.0) for k in keys]
    i = max(0, min(len(keys) - 2, sum(1 for tk in times if tk <= local) - 1)) if len(keys) > 1 else 0
    a, b = keys[i], keys[min(i + 1, len(keys) - 1)]
    span = times[min(i + 1, len(keys) - 1)] - times[i]
    w = 0.0 if span <= 0 else min(1.0, max(0.0, (local - times[i]) / span))

    def lerp(name: str, default: tuple[float, ...]) -> tuple[float, ...]:
        va, vb = _floats(a.attrs.get(name), default), _floats(b.attrs.get(name), default)
        return tuple(x + (y - x) * w for x, y in zip(va, vb))

    sx, sy, _ = lerp("scale", (1.0, 1.0, 1.0))  # depth scale has no 2-D effect
    px, py, pz = lerp("pos", (0.0, 0.0, 0.0))
    ox, oy, oz = lerp("orient", (0.0, 0.0, 0.0))
    angle, ax, ay, az = lerp("rot", (0.0, 0.0, 0.0, 1.0))
    m = about(scaling(sx * _depth(pz), sy * _depth(pz)), *centre)
    m = translate(px, -py) @ m
    # Turning about x or y foreshortens the other axis; about z it is a plain rotation.
    m = (
        about(
            scaling(abs(math.cos(math.radians(oy))), abs(math.cos(math.radians(ox)))) @ rotation(-math.radians(oz)),
            *centre,
        )
        @ m
    )
    norm = math.sqrt(ax * ax + ay * ay + az * az) or 1.0
    ax, ay, az = ax / norm, ay / norm, az / norm
    rad = math.radians(angle)
    fore_x = 1 - abs(ay) * (1 - abs(math.cos(rad)))
    fore_y = 1 - abs(ax) * (1 - abs(math.cos(rad)))
    return about(rotation(-rad * az) @ scaling(fore_x, fore_y), *centre) @ m


def _floats(text: str | None, default: tuple[float, ...]) -> tuple[float, ...]:
    if not text:
        return default
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        return default
    return values + default[len(values) :] if len(values) < len(default) else values[: len(default)]
