"""The 14 SXML transition types: how the outgoing layer ``a`` gives way to ``b``.

Like the effects, their looks are not documented (notes §1.5, §8); each is a choice,
written down in docs/sxml.md. ``p`` runs from 0 (all ``a``) to 1 (all ``b``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from dragon.movie.canvas import Canvas, Layer, about, full, mix, over, rotation, scaling, translate, warp
from dragon.sxml import schema

# the parser renders "custom" as the default transition: the renderer never sees it
TRANSITION_TYPES = tuple(t for t in schema.TRANSITION_TYPES if t != "custom")
RESAMPLING = frozenset(
    {"waterdrop", "swirl", "move", "over", "under", "cube", "spiral", "dualmove"}
)  # move or bend their sides
SOFT = 0.04  # width of the soft edge of wipes, in screen units


def direction_vector(direction: str | None, default: tuple[float, float] = (1.0, 0.0)) -> tuple[float, float]:
    """Where the motion goes: left/right/up/down, positive (right) / negative (left),
    or an explicit "x,y" (SXML's y points up; the screen's down)."""
    named = {
        "left": (-1.0, 0.0),
        "right": (1.0, 0.0),
        "up": (0.0, -1.0),
        "down": (0.0, 1.0),
        "positive": (1.0, 0.0),
        "negative": (-1.0, 0.0),
        "static": (0.0, 0.0),
    }
    if direction is None:
        return default
    if direction in named:
        return named[direction]
    try:
        x, y = (float(v) for v in direction.split(","))
    except ValueError:
        return default
    norm = math.hypot(x, y) or 1.0
    return x / norm, -y / norm


def blend(
    kind: str, a: Layer | None, b: Layer | None, p: float, canvas: Canvas, direction: str | None = None
) -> torch.Tensor:
    p = min(1.0, max(0.0, p))
    a = canvas.blank() if a is None else full(a, canvas)
    b = canvas.blank() if b is None else full(b, canvas)
    return _KINDS.get(kind, _crossfade)(a, b, p, canvas, direction_vector(direction))


def _edge(distance: torch.Tensor) -> torch.Tensor:
    """1 inside (distance < 0), 0 outside, with a soft edge."""
    return (0.5 - distance / SOFT).clamp(0, 1)


def _crossfade(a, b, p, canvas, d):
    return mix(a, b, p, canvas)


def _circle(a, b, p, canvas, d):
    x, y = canvas.xy
    reach = math.hypot(canvas.aspect, 1.0) + SOFT
    return mix(a, b, _edge(torch.sqrt(x * x + y * y) - p * reach), canvas)


def _waterdrop(a, b, p, canvas, d):
    """Ripples spread from the centre while ``b`` wells up through them."""
    x, y = canvas.xy
    r = torch.sqrt(x * x + y * y)
    strength = 0.04 * math.sin(math.pi * p)
    ripple = strength * torch.sin(r * 30 - p * 20) / (1 + 4 * r)
    grid = torch.stack([(x * (1 + ripple)) / canvas.aspect, y * (1 + ripple)], dim=-1)[None]
    return mix(
        _warped(a, grid),
        _warped(b, grid),
        _edge(r - p * (math.hypot(canvas.aspect, 1.0) + SOFT)) * 0.5 + p * 0.5,
        canvas,
    )


def _warped(layer: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    """``layer`` sampled at ``grid`` (normalised coordinates), edges clamped."""
    return F.grid_sample(layer[None], grid, mode="bilinear", padding_mode="border", align_corners=False)[0]


def _radial(a, b, p, canvas, d):
    """A clock hand sweeps ``b`` in."""
    x, y = canvas.xy
    angle = (torch.atan2(x, -y) / (2 * math.pi)) % 1.0  # 0 at twelve o'clock, clockwise
    return mix(a, b, ((p * 1.02 - angle) / 0.02).clamp(0, 1), canvas)


def _swirl(a, b, p, canvas, d):
    """Both pictures twist around the centre, most at the midpoint, as they cross-fade."""
    x, y = canvas.xy
    r = torch.sqrt(x * x + y * y)
    twist = 4 * math.sin(math.pi * p) * (1 - r / math.hypot(canvas.aspect, 1.0)).clamp(0, 1) ** 2
    c, s = torch.cos(twist), torch.sin(twist)
    grid = torch.stack([(c * x - s * y) / canvas.aspect, s * x + c * y], dim=-1)[None]
    return mix(_warped(a, grid), _warped(b, grid), p, canvas)


def _scan(a, b, p, canvas, d):
    """A straight wipe in the direction of motion."""
    x, y = canvas.xy
    dx, dy = d if d != (0.0, 0.0) else (1.0, 0.0)
    along = x * dx + y * dy
    lo = -(abs(dx) * canvas.aspect + abs(dy)) - SOFT
    front = lo + p * -2 * lo
    return mix(a, b, _edge(along - front), canvas)


def _strip(a, b, p, canvas, d):
    """Horizontal strips wipe across one after another."""
    x, y = canvas.xy
    strips = 6
    k = ((y + 1) / 2 * strips).floor()
    local = (p * 1.5 - k / strips * 0.5).clamp(0, 1)
    front = -canvas.aspect - SOFT + local * 2 * (canvas.aspect + SOFT)
    side = x if d[0] >= 0 else -x
    return mix(a, b, _edge(side - front), canvas)


def _scans(a, b, p, canvas, d):
    """Venetian blinds: every bar wipes at once."""
    x, y = canvas.xy
    bars = 10
    vertical = abs(d[0]) >= abs(d[1])
    coord = x / canvas.aspect if vertical else y
    phase = ((coord + 1) / 2 * bars) % 1.0
    return mix(a, b, ((p * 1.1 - phase) / 0.1).clamp(0, 1), canvas)


def _shift(layer, dx, dy, canvas):
    return warp(layer, canvas, translate(dx, dy))


def _move(a, b, p, canvas, d):
    """``b`` pushes ``a`` off screen."""
    q = _smooth(p)
    dx, dy = d[0] * 2 * canvas.aspect, d[1] * 2
    return over(_shift(b, dx * (q - 1), dy * (q - 1), canvas), _shift(a, dx * q, dy * q, canvas), canvas)


def _over(a, b, p, canvas, d):
    """``b`` slides in on top of ``a``."""
    q = _smooth(p)
    return over(_shift(b, d[0] * 2 * canvas.aspect * (q - 1), d[1] * 2 * (q - 1), canvas), a, canvas)


def _under(a, b, p, canvas, d):
    """``a`` slides away, uncovering ``b`` beneath."""
    q = _smooth(p)
    return over(_shift(a, d[0] * 2 * canvas.aspect * q, d[1] * 2 * q, canvas), b, canvas)


def _cube(a, b, p, canvas, d):
    """A turning cube, flattened: ``a`` folds towards one edge while ``b`` unfolds from the other."""
    q = _smooth(p)
    sign = 1.0 if d[0] >= 0 else -1.0
    edge = canvas.aspect * sign
    shade_a, shade_b = 1 - 0.5 * q, 0.5 + 0.5 * q
    out_a = warp(a, canvas, about(scaling(max(1 - q, 1e-3), 1.0), edge, 0.0)) * shade_a
    in_b = warp(b, canvas, about(scaling(max(q, 1e-3), 1.0), -edge, 0.0)) * shade_b
    return over(in_b, out_a, canvas)


def _spiral(a, b, p, canvas, d):
    """``b`` spins in from the centre, growing, over ``a``."""
    q = _smooth(p)
    return over(warp(b, canvas, rotation((1 - q) * 2 * math.pi) @ scaling(max(q, 1e-3))), a, canvas)


def _dualmove(a, b, p, canvas, d):
    """``a`` splits down the middle; its halves move apart, uncovering ``b``."""
    q = _smooth(p)
    x, _ = canvas.xy
    left = (x < 0).to(torch.float32)
    up = _shift(a * left, 0.0, -2.2 * q, canvas)
    down = _shift(a * (1 - left), 0.0, 2.2 * q, canvas)
    return over(up, over(down, b, canvas), canvas)


def _smooth(p: float) -> float:
    return p * p * (3 - 2 * p)


_KINDS = {
    "crossfade": _crossfade,
    "waterdrop": _waterdrop,
    "circle": _circle,
    "radial": _radial,
    "swirl": _swirl,
    "strip": _strip,
    "scan": _scan,
    "scans": _scans,
    "move": _move,
    "over": _over,
    "under": _under,
    "cube": _cube,
    "spiral": _spiral,
    "dualmove": _dualmove,
}
