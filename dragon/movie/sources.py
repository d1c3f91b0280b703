"""Pixels of the media a movie uses: pictures, colour plates, video frames and texts,
each decoded once at the size it is drawn at and kept for the whole render."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

from dragon.errors import InvalidContentError
from dragon.media import images
from dragon.media import text as texts
from dragon.media.video.frames import Decoder, open_video
from dragon.media.video.probe import probe
from dragon.movie.canvas import Canvas, Layer, Texture, from_rgba, patch, place, rect
from dragon.sxml import Node

MAX_SIDE = 4096  # the most detail kept of any medium, whatever the zoom
CACHE_BYTES = 768 * 1024**2  # decoded pictures kept; the least recently drawn go first


def voice_key(node: Node) -> str:
    """The key of a text-to-speech clip: the same text and voice share one clip."""
    digest = hashlib.sha1(f"{node.attrs.get('voice', '')}\0{node.text}".encode()).hexdigest()[:16]
    return f"voice:{digest}"


def media_key(node: Node) -> str | None:
    """The key under which a node's file and length are found, if it has one."""
    if node.tag == "audio" and node.attrs.get("voice") and not node.attrs.get("filename"):
        return voice_key(node)
    return node.attrs.get("filename") or None


class Sources:
    """Media of one render. ``files`` maps each ``filename`` of the SXML to the local
    copy fetched for this render."""

    def __init__(self, files: dict[str, Path], screen: Canvas):
        self.files = files
        self.screen = screen
        self._pictures: OrderedDict[tuple[int, tuple[int, int]], Texture] = OrderedDict()
        self._cached_bytes = 0
        self._sizes: dict[int, tuple[int, int]] = {}
        self._videos: dict[int, _VideoReader] = {}
        self._texts: dict[tuple[int, int], Layer | None] = {}

    def size(self, media: Node) -> tuple[int, int]:
        """Displayed size of a medium (a colour plate has a 360-line screen's)."""
        key = id(media)
        if key not in self._sizes:
            if media.tag == "video":
                self._sizes[key] = self._video(media).size
            elif media.attrs.get("filename"):
                with images.open_image(self._path(media), images.Limits()) as image:
                    swap = images.orientation(image) in images.TRANSPOSED
                    self._sizes[key] = (image.height, image.width) if swap else image.size
            else:
                self._sizes[key] = (round(360 * self.screen.aspect), 360)
        return self._sizes[key]

    def pixels(self, media: Node, need: tuple[int, int], t: float, canvas: Canvas) -> Texture:
        """The medium at movie time ``t`` as a premultiplied (4, h, w) texture of about
        ``need`` pixels of ``canvas`` times its detail (never more than the source has;
        a colour plate, flat, is at most the canvas's size)."""
        if media.attrs.get("filename"):
            width, height = self.size(media)
            detail = canvas.detail
        else:
            (width, height), detail = (canvas.width, canvas.height), 1.0
        scale = min(1.0, max(need[0] / width, need[1] / height) * detail, MAX_SIDE / max(width, height))
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        if media.tag == "video":
            source_time = media.number("skip", 0.0) + (t - media.start) * media.number("speed", 1.0)
            return self._video(media).frame_at(source_time, size)
        key = (id(media), size)
        if key in self._pictures:
            self._pictures.move_to_end(key)
            return self._pictures[key]
        picture = self._pictures[key] = Texture(self._picture(media, size))
        self._cached_bytes += picture.nbytes
        while self._cached_bytes > CACHE_BYTES and len(self._pictures) > 1:
            _, dropped = self._pictures.popitem(last=False)  # a slideshow of many pictures keeps the recent ones
            self._cached_bytes -= dropped.nbytes
        return picture

    def text(self, node: Node, box: tuple[float, float, float, float], canvas: Canvas) -> Layer | None:
        """A text laid out in ``box`` (screen fractions x0, y0, x1, y1) on ``canvas``,
        rasterised once with the canvas's detail and kept as the layer it makes."""
        key = (id(node), canvas.width)
        if key not in self._texts:
            self._texts[key] = self._text(node, box, canvas)
        return self._texts[key]

    def _text(self, node: Node, box: tuple[float, float, float, float], canvas: Canvas) -> Layer | None:
        detail = canvas.detail
        fine = Canvas(round(canvas.width * detail), round(canvas.height * detail))
        x0, y0, x1, y1 = fine.pixels(box)
        if x1 - x0 < 1 or y1 - y0 < 1 or not node.text:
            return None
        style = texts.TextStyle(
            kind=node.attrs.get("type", "zone"),
            fontname=node.attrs.get("fontname") or node.attrs.get("face"),
            fontsize=node.number("fontsize", 0.0) or None,
            color=node.color("fontcolor", "#ffffff") or (255, 255, 255, 255),
            background=node.color("backgroundcolor", None),
            align=node.attrs.get("align", "center,center"),
            wrap=node.flag("wrap", True),
            reference=node.attrs.get("reference"),
            weight=node.attrs.get("weight"),
            style=node.attrs.get("style"),
            interlign=node.number("interlign", 0.0) or None,
        )
        pixels = from_rgba(texts.render_text(node.text, (x1 - x0, y1 - y0), style, scale=fine.scale), canvas.device)
        if fine.width == canvas.width:
            return patch(pixels, x0, y0, canvas)
        # Finer than the screen: drawn like a picture, through the canvas's box filter.
        (left, top), (right, bottom) = fine.screen(x0, y0), fine.screen(x1, y1)
        return place(
            Texture(pixels),
            canvas,
            rect((left + right) / 2, (top + bottom) / 2, (right - left) / 2, (bottom - top) / 2),
        )

    def close(self) -> None:
        for reader in self._videos.values():
            reader.close()
        self._videos.clear()

    def _path(self, media: Node) -> Path:
        return self.files[media_key(media) or ""]

    def _picture(self, media: Node, size: tuple[int, int]) -> torch.Tensor:
        colour = media.color("color", None)
        if not media.attrs.get("filename"):
            plate = torch.tensor(colour or (0, 0, 0, 255), dtype=torch.float32, device=self.screen.device) / 255
            return (
                (torch.cat([plate[:3] * plate[3], plate[3:]]))[:, None, None].expand(4, size[1], size[0]).contiguous()
            )
        image, _ = images.load_display(self._path(media), images.Limits(), at_least=size)
        image = image.convert("RGBA")
        if image.size != size:
            image = image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)
        return from_rgba(np.asarray(image), self.screen.device)

    def _video(self, media: Node) -> _VideoReader:
        key = id(media)
        if key not in self._videos:
            self._videos[key] = _VideoReader(self._path(media), self.screen.device)
        return self._videos[key]


class _VideoReader:
    """Frames of one video in increasing time, decoding forward and seeking only when
    asked to jump back or far ahead."""

    def __init__(self, path: Path, device: torch.device):
        self.probe = probe(path)
        self.container = open_video(path)
        self.stream = self.container.streams.video[0]
        self.decoder = Decoder(self.container, self.stream)
        self.device = device
        self.size = (self.probe.width, self.probe.height)
        self._frames: Iterator[av.VideoFrame] | None = None
        self._current: av.VideoFrame | None = None
        self._next: av.VideoFrame | None = None
        # The frame itself, not its id(): a freed frame's id is reused by later frames.
        self._cache: tuple[av.VideoFrame, tuple[int, int], Texture] | None = None

    def frame_at(self, t: float, size: tuple[int, int]) -> Texture:
        t = min(max(0.0, t), max(0.0, self.probe.duration - 1e-3))
        current = self._advance(t)
        if current is None:
            raise InvalidContentError("no frame of the video can be decoded")
        if self._cache is not None and self._cache[0] is current and self._cache[1] == size:
            return self._cache[2]
        turn = round(self.probe.rotation) % 360
        coded = size if turn % 180 == 0 else (size[1], size[0])
        rgb = current.reformat(width=coded[0], height=coded[1], format="rgb24").to_ndarray()
        if turn:
            rgb = np.ascontiguousarray(np.rot90(rgb, turn // 90))
        texture = Texture(from_rgba(rgb, self.device))
        self._cache = (current, size, texture)
        return texture

    def _advance(self, t: float) -> av.VideoFrame | None:
        start = float(self.stream.start_time * self.stream.time_base) if self.stream.start_time else 0.0
        target = t + start
        behind = self._current is not None and (self._current.time or 0.0) > target + 1e-3
        far = self._current is not None and target - (self._current.time or 0.0) > 3.0
        frames = self._seek(target) if self._frames is None or behind or far else self._frames
        while True:
            if self._next is None:
                self._next = next(frames, None)
                if self._next is None:
                    return self._current  # past the end: hold the last frame
            if self._current is not None and (self._next.time or 0.0) > target + 1e-4:
                return self._current
            self._current, self._next = self._next, None

    def _seek(self, target: float) -> Iterator[av.VideoFrame]:
        self.decoder.seek(int(max(0.0, target - 0.05) / self.stream.time_base))
        self._frames = self.decoder.frames()
        self._current = self._next = None
        return self._frames

    def close(self) -> None:
        self.container.close()
