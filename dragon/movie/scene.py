"""Drawing a resolved SXML tree at one instant: one premultiplied layer per node,
composited bottom to top in document order.

Every node is drawn the same way: its own content (by tag), then its filters, then
its animators. Nodes outside their time draw nothing. Timing (``start`` and
``duration`` of every node) was resolved beforehand by :mod:`dragon.sxml.timing`.
"""

from __future__ import annotations

import torch

from dragon.movie import animators, effects, filters, transitions
from dragon.movie.canvas import (
    Canvas,
    Layer,
    Matrix,
    Texture,
    full,
    is_identity,
    over,
    place,
    rect,
    reduce,
    scaling,
    warp,
)
from dragon.movie.sources import Sources
from dragon.sxml import Node

VISUAL = ("sequence", "stack", "effect", "text", "overlay", "body")
EPSILON = 1e-6


def active(node: Node, t: float) -> bool:
    return node.start - EPSILON <= t < node.start + node.duration - EPSILON


def progress(node: Node, t: float) -> float:
    return 1.0 if node.duration <= 0 else min(1.0, max(0.0, (t - node.start) / node.duration))


def layout(
    placement: dict[str, float | None], media_aspect: float | None, screen_aspect: float
) -> tuple[float, float, float, float]:
    """A CSS-like box in screen fractions (x0, y0, x1, y1). A missing size follows the
    medium's aspect when the other size is given, else fills what the offsets leave."""
    left, right, width = placement.get("left"), placement.get("right"), placement.get("width")
    top, bottom, height = placement.get("top"), placement.get("bottom"), placement.get("height")
    if width is None and left is not None and right is not None:
        width = 1 - left - right
    if height is None and top is not None and bottom is not None:
        height = 1 - top - bottom
    if media_aspect:
        if width is None and height is not None:
            width = height * media_aspect / screen_aspect
        elif height is None and width is not None:
            height = width * screen_aspect / media_aspect
    width = 1 - (left or 0) - (right or 0) if width is None else width
    height = 1 - (top or 0) - (bottom or 0) if height is None else height
    x0 = left if left is not None else (1 - right - width if right is not None else (1 - width) / 2)
    y0 = top if top is not None else (1 - bottom - height if bottom is not None else (1 - height) / 2)
    return x0, y0, x0 + max(width, 0.0), y0 + max(height, 0.0)


class Scene:
    """Draws on ``canvas``. A node whose layer would be resampled a second time (moved
    by an animator or a camera, or by a transition that moves or bends its sides) is
    drawn on a finer canvas, then reduced: resampling a resampled layer loses the detail
    that the canvas's filtering keeps everywhere else."""

    def __init__(self, movie: Node, sources: Sources, canvas: Canvas, warnings: list[str]):
        self.movie = movie
        self.body = movie.find("body")[0]
        self.sources = sources
        self.canvas = canvas
        self.warnings = warnings
        self._warned: set[str] = set()
        self._fine: Scene | None = None
        self._cards: dict[tuple[int, int], Texture] = {}

    def frame(self, t: float) -> torch.Tensor:
        """The picture at movie time ``t``, over black."""
        layer = self.draw(self.body, t)
        return self.canvas.blank() if layer is None else full(layer, self.canvas)

    def draw(self, node: Node, t: float) -> Layer | None:
        if not active(node, t):
            return None
        if self.canvas.filtered and self._resampled(node, t):
            fine = self.fine
            layer = fine.draw(node, t)
            return None if layer is None else reduce(full(layer, fine.canvas), self.canvas)
        layer = getattr(self, f"_draw_{node.tag}")(node, t)
        if layer is None:
            return None
        box = self._box(node)
        for modifier in node.children:
            if modifier.tag == "filter" and active(modifier, t):
                layer = self._filter(modifier, full(layer, self.canvas), t, box)
        return self._animate(node, layer, t, box)

    # --- node types -------------------------------------------------------------

    def _draw_body(self, node: Node, t: float) -> Layer | None:
        return self._draw_sequence(node, t)

    def _draw_sequence(self, node: Node, t: float) -> Layer | None:
        children = node.children
        for i, child in enumerate(children):
            if child.tag == "transition" and active(child, t):
                before = next((c for c in reversed(children[:i]) if c.tag in VISUAL), None)
                after = next((c for c in children[i + 1 :] if c.tag in VISUAL), None)
                a = self.draw(before, t) if before is not None else None
                b = self.draw(after, t) if after is not None else None
                return transitions.blend(
                    child.attrs.get("type", "crossfade"),
                    a,
                    b,
                    progress(child, t),
                    self.canvas,
                    child.attrs.get("direction"),
                )
        for child in reversed(children):
            if child.tag in VISUAL and active(child, t):
                return self.draw(child, t)
        return None

    def _draw_stack(self, node: Node, t: float) -> Layer | None:
        layer = None
        for child in node.children:
            if child.tag in VISUAL:
                layer = over(self.draw(child, t), layer, self.canvas)
        view = self._camera(node, t)
        return layer if layer is None or view is None else warp(layer, self.canvas, view)

    def _draw_effect(self, node: Node, t: float) -> Layer | None:
        kind = node.attrs.get("type", "none")
        media = node.media()
        layer = None
        if media:
            slots = [(m.start, m.duration) for m in media]
            for pose in effects.poses(kind, slots, t, node.attrs.get("direction"), node.attrs.get("cameramove")):
                layer = over(self._pose(node, media[pose.index], pose, t), layer, self.canvas)
        for child in node.children:
            if child.tag in VISUAL:
                layer = over(self.draw(child, t), layer, self.canvas)
        return layer

    def _draw_text(self, node: Node, t: float) -> Layer | None:
        return self.sources.text(node, layout(node.placement(), None, self.canvas.aspect), self.canvas)

    def _draw_overlay(self, node: Node, t: float) -> Layer | None:
        media = node.media()
        layer = None
        for m in media:
            if not active(m, t):
                continue
            mw, mh = self.sources.size(m)
            x0, y0, x1, y1 = layout(node.placement(), mw / mh, self.canvas.aspect)
            a = self.canvas.aspect
            cx, cy, hx, hy = (x0 + x1 - 1) * a, y0 + y1 - 1, (x1 - x0) * a, y1 - y0
            if self._adapter(m, "none") == "fitAdapter":  # keep the medium's aspect inside the box
                fit = min(hx / (mw / mh), hy)
                hx, hy = fit * mw / mh, fit
            need = (round(hx / a * self.canvas.width), round(hy * self.canvas.height))
            drawn = place(self.sources.pixels(m, need, t, self.canvas), self.canvas, rect(cx, cy, hx, hy))
            if drawn is not None:
                layer = over(self._media_filters(m, drawn, t, self.canvas.pixels((x0, y0, x1, y1))), layer, self.canvas)
        for child in node.children:
            if child.tag in VISUAL:
                layer = over(self.draw(child, t), layer, self.canvas)
        return layer

    # --- helpers ----------------------------------------------------------------

    def _pose(self, effect: Node, media: Node, pose: effects.Pose, t: float) -> Layer | None:
        mw, mh = self.sources.size(media)
        default = "fitAdapter" if effect.attrs.get("type") == "square" else "kenburnsAdapter"  # a framed card
        hx, hy = self._base(mw / mh, self._adapter(media, effect.attrs.get("adapter", default)), mw, mh)
        # Decoded once per medium with kenburns' zoom to spare (not per frame at its current zoom).
        need = (
            round(hx / self.canvas.aspect * self.canvas.width * effects.ZOOM),
            round(hy * self.canvas.height * effects.ZOOM),
        )
        transform = pose.motion @ scaling(hx, hy)
        layer = place(self.sources.pixels(media, need, t, self.canvas), self.canvas, transform)
        if layer is None:
            return None
        if pose.frame:
            layer = self._framed(layer, transform, need)
        if pose.alpha < 1 or pose.mask is not None:
            layer = full(layer, self.canvas) * pose.alpha
            if pose.mask is not None:
                layer = layer * pose.mask(self.canvas)
        return self._media_filters(media, layer, t, (0, 0, self.canvas.width, self.canvas.height))

    def _base(self, aspect: float, adapter: str, width: int, height: int) -> tuple[float, float]:
        """Half sizes of a medium's rectangle on screen, as its adapter places it."""
        screen = self.canvas.aspect
        if adapter == "fitAdapter":
            return (screen, screen / aspect) if aspect > screen else (aspect, 1.0)
        if adapter == "fixedAdapter":  # native pixels of a 360-line frame
            return width / 360.0, height / 360.0
        if adapter == "none":
            return screen, 1.0
        if adapter == "panoramicAdapter":
            return max(aspect, screen), 1.0
        return (aspect, 1.0) if aspect > screen else (screen, screen / aspect)  # cover: zoom/kenburns adapters

    def _adapter(self, media: Node, default: str) -> str:
        for f in media.find("filter"):
            if f.attrs.get("type") in filters.ADAPTERS:
                return f.attrs["type"]
        return default

    def _framed(self, layer: Layer, transform: torch.Tensor, size: tuple[int, int]) -> Layer:
        """A white border around a posed medium: a slightly larger white card beneath it,
        with as many texels as the medium (``size`` pixels at the canvas's detail), so
        that its edges are as sharp."""
        w, h = (max(1, round(side * self.canvas.detail)) for side in size)
        if (w, h) not in self._cards:
            self._cards[(w, h)] = Texture(torch.ones(4, 1, 1, device=self.canvas.device).expand(4, h, w))
        card = place(self._cards[(w, h)], self.canvas, transform @ scaling(1.04, 1.04))
        framed = over(layer, card, self.canvas)
        return layer if framed is None else framed

    def _media_filters(self, media: Node, layer: Layer, t: float, box: tuple[int, int, int, int]) -> Layer:
        for f in media.find("filter"):
            if f.attrs.get("type") not in filters.ADAPTERS and active(f, t):
                layer = self._filter(f, full(layer, self.canvas), t, box)
        return layer

    def _filter(self, node: Node, layer: torch.Tensor, t: float, box: tuple[int, int, int, int]) -> torch.Tensor:
        kind = node.attrs.get("type", "")
        if kind not in filters.RENDERED and kind not in self._warned:
            self._warned.add(kind)
            self.warnings.append(f"line {node.line}: filter type '{kind}' is not rendered by Dragon; it is ignored")
        return filters.apply(kind, node, layer, progress(node, t), box, self.canvas)

    def _animate(self, node: Node, layer: Layer, t: float, box: tuple[int, int, int, int]) -> Layer:
        motion = self._motion(node, t, box)
        return layer if motion is None else warp(layer, self.canvas, motion)

    def _motion(self, node: Node, t: float, box: tuple[int, int, int, int]) -> Matrix | None:
        """Where the node's animators move its layer at ``t``; None when they leave it in place."""
        moves = node.find("animator")
        if not moves:
            return None
        x0, y0, x1, y1 = box
        centre = ((x0 + x1) / self.canvas.width - 1) * self.canvas.aspect, (y0 + y1) / self.canvas.height - 1
        total = torch.eye(3, dtype=torch.float64)
        for animator in moves:  # in document order: the first applies first
            total = animators.matrix(animator, t, centre, self.canvas.aspect) @ total
        return None if is_identity(total) else total

    def _camera(self, node: Node, t: float) -> Matrix | None:
        """How a stack's active cameras move the view at ``t``; None when they do not."""
        total = torch.eye(3, dtype=torch.float64)
        for camera in node.find("camera"):
            if active(camera, t):
                # The camera moves the other way from the world: invert its transforms, last first.
                for animator in camera.find("animator"):
                    total = total @ animators.matrix(animator, t, (0.0, 0.0), self.canvas.aspect)
        return None if is_identity(total) else torch.linalg.inv(total)

    def _resampled(self, node: Node, t: float) -> bool:
        """Whether the node's layer is resampled after it is drawn, at ``t``."""
        if node.tag in ("sequence", "body"):
            return any(
                c.tag == "transition" and active(c, t) and c.attrs.get("type", "crossfade") in transitions.RESAMPLING
                for c in node.children
            )
        if node.tag == "stack" and self._camera(node, t) is not None:
            return True
        return self._motion(node, t, self._box(node)) is not None

    @property
    def fine(self) -> Scene:
        """The same movie drawn on a canvas √antialias times finer, unfiltered."""
        if self._fine is None:
            c = self.canvas
            canvas = Canvas(round(c.width * c.detail), round(c.height * c.detail), c.device)
            self._fine = Scene(self.movie, self.sources, canvas, self.warnings)
            self._fine._warned = self._warned
        return self._fine

    def _box(self, node: Node) -> tuple[int, int, int, int]:
        if node.tag == "text":
            return self.canvas.pixels(layout(node.placement(), None, self.canvas.aspect))
        if node.tag == "overlay":
            media = node.media()
            aspect = None
            if media:
                mw, mh = self.sources.size(media[0])
                aspect = mw / mh
            return self.canvas.pixels(layout(node.placement(), aspect, self.canvas.aspect))
        return 0, 0, self.canvas.width, self.canvas.height
