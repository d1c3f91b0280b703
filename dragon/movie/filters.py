"""Post-processing filters on a node's layer (notes §1.11).

Adapters (fitAdapter, zoomAdapter, ...) are not here: they change where a medium is
placed, so :mod:`dragon.movie.scene` reads them. Filter types the renderer does not
draw are reported once as a warning in the task's details, never an error.
"""

from __future__ import annotations

import math

import torch

from dragon.movie.canvas import Canvas, gaussian_blur
from dragon.sxml import Node
from dragon.sxml.model import parse_color

ADAPTERS = ("fitAdapter", "zoomAdapter", "panoramicAdapter", "fixedAdapter", "kenburnsAdapter")
Box = tuple[int, int, int, int]  # pixel bounds x0, y0, x1, y1 of the node's content

LUMA = torch.tensor([0.2126, 0.7152, 0.0722])


def apply(kind: str, node: Node, layer: torch.Tensor, p: float, box: Box, canvas: Canvas) -> torch.Tensor:
    """``layer`` filtered; ``p`` is the filter's own progress (0..1) over its time."""
    fn = FILTERS.get(kind)
    return layer if fn is None else fn(node, layer, p, box, canvas)


def _alpha(node, layer, p, box, canvas):
    """Opacity from ``alphaStart`` to ``alphaEnd`` over the filter's time (a fade in by default)."""
    start, end = node.number("alphaStart", 0.0), node.number("alphaEnd", 1.0)
    return layer * max(0.0, min(1.0, start + (end - start) * p))


def _blur(node, layer, p, box, canvas):
    sigma = node.number("diameter", node.number("width", 8.0)) * canvas.scale / 3
    return gaussian_blur(layer, sigma, sigma)


def _hblur(node, layer, p, box, canvas):
    return gaussian_blur(layer, node.number("diameter", node.number("width", 8.0)) * canvas.scale / 3, 0)


def _vblur(node, layer, p, box, canvas):
    return gaussian_blur(layer, 0, node.number("diameter", node.number("width", 8.0)) * canvas.scale / 3)


def _frame(node, layer, p, box, canvas):
    """A border of ``width`` (in 360-line pixels) and ``color`` inside the content box."""
    width = max(1, round(node.number("width", 6.0) * canvas.scale))
    r, g, b, a = node.color("color", "#ffffff") or (255, 255, 255, 255)
    x0, y0, x1, y1 = box
    ring = torch.zeros(canvas.height, canvas.width, device=layer.device)
    ring[y0:y1, x0:x1] = 1
    ring[y0 + width : y1 - width, x0 + width : x1 - width] = 0
    colour = torch.tensor([r, g, b, 255], device=layer.device, dtype=torch.float32)[:, None, None] / 255 * (a / 255)
    return layer * (1 - ring * (a / 255)) + colour * ring


def _border_blur(node, layer, p, box, canvas):
    """Edges fading out over ``transWidth`` (a fraction of the box's smaller side)."""
    x0, y0, x1, y1 = box
    reach = max(1.0, node.number("transWidth", node.number("width", 0.1)) * min(x1 - x0, y1 - y0))
    xs = torch.arange(canvas.width, device=layer.device, dtype=torch.float32) + 0.5
    ys = torch.arange(canvas.height, device=layer.device, dtype=torch.float32) + 0.5
    fx = torch.minimum(xs - x0, x1 - xs).clamp(0, reach) / reach
    fy = torch.minimum(ys - y0, y1 - ys).clamp(0, reach) / reach
    return layer * (fy[:, None] * fx[None, :])


PRESETS = {
    "negative": lambda rgb, luma: 1 - rgb,
    "lowContrast": lambda rgb, luma: 0.5 + (rgb - 0.5) * 0.6,
    "highContrast": lambda rgb, luma: (0.5 + (rgb - 0.5) * 1.6).clamp(0, 1),
    "sepia": lambda rgb, luma: torch.stack([luma * 1.07, luma * 0.74, luma * 0.43]).clamp(0, 1),
    "blackAndWhite": lambda rgb, luma: luma.expand(3, -1, -1),
}


def _colormap(node, layer, p, box, canvas):
    """A preset (black and white without one), or ``rgba-bias-matrix``: five colours,
    the bias then the rows of the RGBA matrix, each byte read as 0..1."""
    matrix = node.attrs.get("rgba-bias-matrix")
    values = [parse_color(c) for c in matrix.split(",")][:5] if matrix else []
    if len(values) == 5 and all(values):
        bias = torch.tensor(values[0][:3], dtype=torch.float32, device=layer.device) / 255
        rows = torch.tensor([v[:3] for v in values[1:4]], dtype=torch.float32, device=layer.device) / 255
        rgb = torch.einsum("ij,jhw->ihw", rows, _straight(layer)) + bias[:, None, None]
        return _with_alpha(rgb.clamp(0, 1), layer)
    return _preset(layer, node.attrs.get("preset", "blackAndWhite"))


def _straight(layer: torch.Tensor) -> torch.Tensor:
    """The colour without premultiplication, for the maths."""
    return layer[:3] / layer[3:4].clamp(min=1e-6)


def _preset(layer: torch.Tensor, name: str) -> torch.Tensor:
    rgb = _straight(layer)
    luma = torch.einsum("c,chw->hw", LUMA.to(layer.device), rgb)[None]
    out = PRESETS.get(name, PRESETS["blackAndWhite"])(rgb, luma)
    return _with_alpha(out.clamp(0, 1), layer)


def _with_alpha(rgb: torch.Tensor, layer: torch.Tensor) -> torch.Tensor:
    """A straight colour put back under the layer's own opacity (premultiplied RGBA)."""
    return torch.cat([rgb * layer[3:4], layer[3:4]])


def _tint(node, layer, p, box, canvas):
    """Luminance mapped from ``blackColor`` to ``whiteColor``."""
    luma = torch.einsum("c,chw->hw", LUMA.to(layer.device), _straight(layer))[None]
    white = torch.tensor((node.color("whiteColor", "#ffffff") or (255,) * 4)[:3], device=layer.device) / 255
    black = torch.tensor((node.color("blackColor", "#000000") or (0,) * 4)[:3], device=layer.device) / 255
    return _with_alpha(black[:, None, None] + luma * (white - black)[:, None, None], layer)


def _noise(node, layer, p, box, canvas):
    """Film grain, the same from run to run (seeded by the time)."""
    generator = torch.Generator(device="cpu").manual_seed(int(p * 1e6))
    grain = (torch.rand(1, canvas.height, canvas.width, generator=generator) - 0.5).to(layer.device)
    return torch.cat([(layer[:3] + grain * 0.15 * layer[3:4]).clamp(0, 1), layer[3:4]])


def _flick(node, layer, p, box, canvas):
    """An old projector's flicker."""
    gain = 1 + 0.12 * math.sin(p * 97.0) * math.sin(p * 31.0)
    return torch.cat([(layer[:3] * gain).clamp(0, 1), layer[3:4]])


def _tv(node, layer, p, box, canvas):
    """Scan lines and grain."""
    lines = (torch.arange(canvas.height, device=layer.device) // max(1, round(2 * canvas.scale)) % 2).to(torch.float32)
    return _noise(node, torch.cat([layer[:3] * (1 - 0.25 * lines[:, None]), layer[3:4]]), p, box, canvas)


def _flashback(node, layer, p, box, canvas):
    """Sepia with a dark vignette: a memory."""
    toned = _preset(layer, "sepia")
    x, y = canvas.xy
    vignette = (1 - 0.5 * ((x / canvas.aspect) ** 2 + y**2) / 2).clamp(0, 1)
    return torch.cat([toned[:3] * vignette, toned[3:4]])


def _threshold(node, layer, p, box, canvas):
    level = node.number("threshold", 0.5)
    luma = torch.einsum("c,chw->hw", LUMA.to(layer.device), _straight(layer))[None]
    return _with_alpha((luma > level).to(torch.float32).expand(3, -1, -1), layer)


def _exposure(node, layer, p, box, canvas):
    gain = 2 ** node.number("exposure", node.number("value", 0.5))
    return torch.cat([(layer[:3] * gain).clamp(0, 1) * (layer[3:4] > 0), layer[3:4]])


FILTERS = {
    "alpha": _alpha,
    "blur": _blur,
    "gaussianBlur": _blur,
    "hblur": _hblur,
    "hgaussianBlur": _hblur,
    "vblur": _vblur,
    "vgaussianBlur": _vblur,
    "frame": _frame,
    "borderBlur": _border_blur,
    "colormap": _colormap,
    "tint": _tint,
    "noise": _noise,
    "flick": _flick,
    "tv": _tv,
    "flashback": _flashback,
    "threshold": _threshold,
    "exposure": _exposure,
}
RENDERED = frozenset(FILTERS) | frozenset(ADAPTERS) | {"identity", "antialias"}
