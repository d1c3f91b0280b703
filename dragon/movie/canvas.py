"""Screen geometry and the few tensor operations everything else is built from.

Coordinates follow SXML's OpenGL convention, except that y grows downwards like image
rows: the screen spans x in [-aspect, aspect] and y in [-1, 1]. Layers are
premultiplied RGBA tensors of shape (4, H, W), so "over" is one multiply-add and a
transparent layer is all zeros.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import torch
import torch.nn.functional as F

Matrix = torch.Tensor  # 3x3, float64, acting on column vectors (x, y, 1)


@dataclass(eq=False)
class Canvas:
    """The render surface, at the output size. ``antialias`` (samples per pixel: 1, 2 or
    4) filters what is resampled instead of drawing more pixels: pictures and texts are
    rasterised with √antialias times the detail, and a picture drawn smaller than its
    texels is looked up in a box-filtered copy (see :class:`Texture`)."""

    width: int
    height: int
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    antialias: int = 1

    @property
    def filtered(self) -> bool:
        return self.antialias > 1

    @property
    def detail(self) -> float:
        """How much finer than the output pictures and texts are rasterised."""
        return math.sqrt(max(1, self.antialias))

    @property
    def aspect(self) -> float:
        return self.width / self.height

    @property
    def scale(self) -> float:
        """Pixels per SXML size unit: sizes are expressed for a 360-pixel-high frame."""
        return self.height / 360.0

    def blank(self) -> torch.Tensor:
        return torch.zeros(4, self.height, self.width, device=self.device)

    @cached_property
    def axes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Screen x of every pixel column and y of every row (pixel centres)."""
        ys = (torch.arange(self.height, device=self.device, dtype=torch.float32) + 0.5) / self.height * 2 - 1
        xs = (
            (torch.arange(self.width, device=self.device, dtype=torch.float32) + 0.5) / self.width * 2 - 1
        ) * self.aspect
        return xs, ys

    @cached_property
    def xy(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Screen coordinates of every pixel centre, each (H, W)."""
        xs, ys = self.axes
        return xs.expand(self.height, -1), ys[:, None].expand(-1, self.width)

    @cached_property
    def points(self) -> torch.Tensor:
        return _points(self, 0, 0, self.width, self.height)

    def screen(self, x: float, y: float) -> tuple[float, float]:
        """Screen coordinates of a point given in pixels (edges at integers)."""
        return (x / self.width * 2 - 1) * self.aspect, y / self.height * 2 - 1

    def pixels(self, box: tuple[float, float, float, float]) -> tuple[int, int, int, int]:
        """A box in screen fractions (x0, y0, x1, y1 in 0..1) as pixel bounds."""
        x0, y0, x1, y1 = box
        return round(x0 * self.width), round(y0 * self.height), round(x1 * self.width), round(y1 * self.height)


@dataclass
class Patch:
    """A layer that is transparent outside a rectangle: only the rectangle is kept, so
    small texts and overlays cost what they cover, not the whole screen."""

    pixels: torch.Tensor  # (4, h, w)
    x0: int
    y0: int


Layer = torch.Tensor | Patch


def full(layer: Layer, canvas: Canvas) -> torch.Tensor:
    """The layer as a whole-screen tensor."""
    if isinstance(layer, torch.Tensor):
        return layer
    out = canvas.blank()
    h, w = layer.pixels.shape[1:]
    out[:, layer.y0 : layer.y0 + h, layer.x0 : layer.x0 + w] = layer.pixels
    return out


def patch(pixels: torch.Tensor, x0: int, y0: int, canvas: Canvas) -> Patch | None:
    """``pixels`` placed with their top-left corner at (x0, y0), cut to the screen."""
    h, w = pixels.shape[1:]
    xa, ya = max(0, x0), max(0, y0)
    xb, yb = min(canvas.width, x0 + w), min(canvas.height, y0 + h)
    if xb <= xa or yb <= ya:
        return None
    return Patch(pixels[:, ya - y0 : yb - y0, xa - x0 : xb - x0], xa, ya)


def over(top: Layer | None, bottom: Layer | None, canvas: Canvas) -> Layer | None:
    if top is None:
        return bottom
    if bottom is None:
        return top
    if isinstance(top, Patch):
        out = full(bottom, canvas).clone()
        h, w = top.pixels.shape[1:]
        region = out[:, top.y0 : top.y0 + h, top.x0 : top.x0 + w]
        region.copy_(torch.addcmul(top.pixels, region, 1 - top.pixels[3:4]))
        return out
    return torch.addcmul(top, full(bottom, canvas), 1 - top[3:4])


def mix(a: Layer | None, b: Layer | None, weight: float | torch.Tensor, canvas: Canvas) -> torch.Tensor:
    """(1 - weight) * a + weight * b; weight may be a per-pixel (H, W) mask."""
    a = canvas.blank() if a is None else full(a, canvas)
    b = canvas.blank() if b is None else full(b, canvas)
    return torch.lerp(a, b, weight) if isinstance(weight, float) else a + (b - a) * weight


def translate(dx: float, dy: float) -> Matrix:
    return torch.tensor([[1, 0, dx], [0, 1, dy], [0, 0, 1]], dtype=torch.float64)


def scaling(sx: float, sy: float | None = None) -> Matrix:
    return torch.tensor([[sx, 0, 0], [0, sx if sy is None else sy, 0], [0, 0, 1]], dtype=torch.float64)


def rotation(angle: float) -> Matrix:
    """Clockwise on screen (y grows downwards), in radians."""
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s, 0], [s, c, 0], [0, 0, 1]], dtype=torch.float64)


def about(matrix: Matrix, cx: float, cy: float) -> Matrix:
    """``matrix`` applied around the point (cx, cy) instead of the origin."""
    return translate(cx, cy) @ matrix @ translate(-cx, -cy)


def sample(
    source: torch.Tensor,
    canvas: Canvas,
    to_source: Matrix,
    region: tuple[int, int, int, int] | None = None,
    *,
    supersample: bool = False,
) -> torch.Tensor:
    """Resample ``source`` onto the canvas (or the pixel ``region`` x0, y0, x1, y1 of it):
    ``to_source`` maps screen coordinates to the source's normalised coordinates
    ([-1, 1] on both axes, pixel edges). Outside the source is transparent. With
    ``supersample``, each pixel is the mean of 2x2 bilinear taps a quarter pixel from
    its centre."""
    x0, y0, x1, y1 = region or (0, 0, canvas.width, canvas.height)
    points = (
        canvas.points
        if region is None or region == (0, 0, canvas.width, canvas.height)
        else _points(canvas, x0, y0, x1, y1)
    )
    m = to_source[:2].T.to(torch.float32).to(canvas.device)
    grid = points @ m  # one matrix product gives every sampling position
    if supersample:
        quarter = 0.5 / canvas.height  # a quarter pixel in screen units
        offsets = torch.tensor(
            [[dx, dy, 0.0] for dy in (-quarter, quarter) for dx in (-quarter, quarter)], device=canvas.device
        )
        grid = (grid[None] + (offsets @ m)[:, None]).view(-1, 2)  # the four taps' grids, one after another
    rows = y1 - y0
    out = F.grid_sample(
        source[None], grid.view(1, -1, x1 - x0, 2), mode="bilinear", padding_mode="zeros", align_corners=False
    )[0]
    return out.view(4, -1, rows, x1 - x0).mean(1) if supersample else out


def _points(canvas: Canvas, x0: int, y0: int, x1: int, y1: int) -> torch.Tensor:
    """Homogeneous screen coordinates (x, y, 1) of the region's pixels, row by row: (n, 3)."""
    xs, ys = canvas.axes
    xs, ys = xs[x0:x1], ys[y0:y1]
    return torch.stack(
        [xs.expand(len(ys), -1), ys[:, None].expand(-1, len(xs)), torch.ones(len(ys), len(xs), device=xs.device)], -1
    ).view(-1, 3)


# Texels per pixel between which a lookup takes the box-filtered copy (exact at 2). From 0.5: below,
# the four taps of supersampling fall within an eighth of a texel, and mixing in the boxed tap
# (weight 1/16 at most) changes nothing visible. Up to 2.4: kenburns zooms 1.2x into a picture that
# has 2 texels per pixel at its closest.
FILTERED = (0.5, 2.4)


class Texture:
    """A picture to draw, with a box-filtered copy made on first use.

    Supersampling 2x2 averages four bilinear taps a quarter pixel from the centre. Where
    a picture has two texels per pixel (what a canvas's detail gives it), those taps sit
    half a texel apart, and their mean is exactly one bilinear tap into the picture
    filtered by a 2x2 box and shifted by half a texel: the same result at the cost of one
    tap. Below two texels per pixel the four taps are closer together: the lookup mixes
    the plain and the boxed tap in the proportion that blurs as much (the taps' spread
    squared). A picture drawn much larger than its texels (below ``FILTERED``) is read
    as it is; one shrunk beyond it is supersampled."""

    def __init__(self, pixels: torch.Tensor):
        self.pixels = pixels

    @property
    def nbytes(self) -> int:
        """Memory held, counting the filtered copy, which is about the picture's size."""
        return 2 * self.pixels.numel() * self.pixels.element_size()

    @cached_property
    def boxed(self) -> torch.Tensor:
        """Each texel the mean of the 2x2 around a texel corner: one more texel each
        way, transparent beyond the picture."""
        return F.avg_pool2d(F.pad(self.pixels[None], (1, 1, 1, 1)), 2, stride=1)[0]

    def draw(self, canvas: Canvas, to_source: Matrix, region: tuple[int, int, int, int]) -> torch.Tensor:
        """The texture resampled onto ``region`` of ``canvas`` (see :func:`sample`)."""
        height, width = self.pixels.shape[1:]
        # Texels per pixel along each texture axis: how far one pixel's box reaches in it.
        per_pixel = (
            float((to_source[:2, :2].abs().sum(dim=1) * torch.tensor([width, height], dtype=torch.float64)).max())
            / canvas.height
        )
        if not canvas.filtered or per_pixel < FILTERED[0]:
            return sample(self.pixels, canvas, to_source, region)
        if per_pixel > FILTERED[1]:
            return sample(self.pixels, canvas, to_source, region, supersample=True)
        # The boxed copy spans half a texel more on each side.
        boxed = sample(self.boxed, canvas, scaling(width / (width + 1), height / (height + 1)) @ to_source, region)
        if per_pixel >= 2:
            return boxed
        return torch.lerp(sample(self.pixels, canvas, to_source, region), boxed, per_pixel**2 / 4)


def place(source: Texture, canvas: Canvas, transform: Matrix) -> Layer | None:
    """Draw ``source`` where ``transform`` puts its unit square ([-1, 1]^2, the source's
    normalised coordinates) on the screen. Only the pixels the square covers are
    computed; a source already at canvas size that lands exactly on the screen is
    returned as it is (the common case of a still picture)."""
    if source.pixels.shape[1:] == (canvas.height, canvas.width) and is_identity(transform, scaling(canvas.aspect, 1.0)):
        return source.pixels
    corners = transform @ torch.tensor([[-1.0, 1, 1, -1], [-1, -1, 1, 1], [1, 1, 1, 1]], dtype=torch.float64)
    px = (corners[0] / canvas.aspect + 1) / 2 * canvas.width
    py = (corners[1] + 1) / 2 * canvas.height
    x0, x1 = max(0, int(px.min()) - 1), min(canvas.width, int(px.max()) + 2)
    y0, y1 = max(0, int(py.min()) - 1), min(canvas.height, int(py.max()) + 2)
    if x1 <= x0 or y1 <= y0:
        return None
    pixels = source.draw(canvas, torch.linalg.inv(transform), (x0, y0, x1, y1))
    if (x0, y0, x1, y1) == (0, 0, canvas.width, canvas.height):
        return pixels
    return Patch(pixels, x0, y0)


def warp(layer: Layer, canvas: Canvas, transform: Matrix) -> torch.Tensor:
    """Move a layer by ``transform`` (screen coordinates to screen coordinates)."""
    layer = full(layer, canvas)
    if is_identity(transform):
        return layer
    to_normalised = scaling(1 / canvas.aspect, 1.0)
    return sample(layer, canvas, to_normalised @ torch.linalg.inv(transform))


def is_identity(transform: Matrix, identity: Matrix | None = None) -> bool:
    """Whether ``transform`` is the identity (or ``identity``), to within rounding."""
    return torch.allclose(transform, torch.eye(3, dtype=torch.float64) if identity is None else identity, atol=1e-9)


def reduce(layer: torch.Tensor, canvas: Canvas) -> torch.Tensor:
    """A layer drawn on a finer canvas, area-averaged down to ``canvas``."""
    return F.interpolate(layer[None], size=(canvas.height, canvas.width), mode="area")[0]


def rect(cx: float, cy: float, hx: float, hy: float, angle: float = 0.0) -> Matrix:
    """The transform that puts a unit square at centre (cx, cy) with half sizes (hx, hy)."""
    return translate(cx, cy) @ rotation(angle) @ scaling(hx, hy)


def gaussian_blur(layer: torch.Tensor, sigma_x: float, sigma_y: float) -> torch.Tensor:
    """Separable Gaussian blur (sigmas in pixels; 0 leaves that axis alone)."""
    out = layer[None]
    for sigma, horizontal in ((sigma_x, True), (sigma_y, False)):
        if sigma < 0.3:
            continue
        radius = min(int(3 * sigma + 0.5), 64)
        xs = torch.arange(-radius, radius + 1, device=layer.device, dtype=torch.float32)
        kernel = torch.exp(-(xs**2) / (2 * sigma**2))
        kernel = (kernel / kernel.sum()).repeat(4, 1, 1)
        if horizontal:
            out = F.conv2d(F.pad(out, (radius, radius, 0, 0), mode="replicate"), kernel[:, :, None, :], groups=4)
        else:
            out = F.conv2d(F.pad(out, (0, 0, radius, radius), mode="replicate"), kernel[:, :, :, None], groups=4)
    return out[0]


def to_rgb24(frame: torch.Tensor) -> np.ndarray:
    """Opaque 8-bit RGB rows for the encoder: premultiplied colour over black is the colour itself."""
    return (frame[:3].clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).contiguous().cpu().numpy()


def from_rgba(pixels: np.ndarray, device: torch.device) -> torch.Tensor:
    """(H, W, 4) or (H, W, 3) uint8 straight alpha → premultiplied (4, H, W) float."""
    t = (
        torch.from_numpy(pixels if pixels.flags.writeable else pixels.copy())
        .to(device)
        .permute(2, 0, 1)
        .to(torch.float32)
        / 255
    )
    if t.shape[0] == 3:
        return torch.cat([t, torch.ones_like(t[:1])])
    return torch.cat([t[:3] * t[3:4], t[3:4]])
