"""Image helpers on Pillow: probing, EXIF, fast decoding to a target size, layout.

No Ray and no task context here: plain functions on files and PIL images, so the
image tasks and the batch mode share them and tests can reason about them.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

from dragon.errors import InvalidImageError, InvalidParametersError
from dragon.media import Source

T = TypeVar("T")

# Counter-clockwise degrees that show an image as shot, by EXIF orientation; flips have none.
ROTATION_OF_ORIENTATION = {1: 0, 3: 180, 6: 270, 8: 90}
# Orientations whose display swaps width and height.
TRANSPOSED = {5, 6, 7, 8}

EXIF_IFD = 0x8769
TAG_ORIENTATION = 0x0112
TAG_DATETIME = 0x0132
TAG_DATETIME_ORIGINAL = 0x9003
TAG_EXPOSURE_TIME = 0x829A
TAG_ISO = 0x8827
TAG_FLASH = 0x9209
TAG_FOCAL_LENGTH = 0x920A


@dataclass(frozen=True)
class Limits:
    max_pixels: int = 100_000_000
    max_frames: int = 500


def _decoding(source: Source, action: Callable[[], T]) -> T:
    """Run ``action``; any failure to read the image becomes an InvalidImageError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            return action()
    except InvalidImageError:
        raise
    except UnidentifiedImageError:
        raise InvalidImageError(f"{_size_note(source)}not a readable image") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidImageError(f"the image is too large to decode ({exc})") from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, MemoryError, RuntimeError) as exc:
        # RuntimeError: the AVIF and HEIF decoders' way of saying the data is corrupt
        raise InvalidImageError(f"the image could not be decoded: {exc}") from None


def _size_note(source: Source) -> str:
    if not isinstance(source, Path):
        return ""  # a remote input read by range is never empty (an empty one is downloaded)
    try:
        return "the file is empty: " if source.stat().st_size == 0 else ""
    except OSError:
        return ""


def open_image(source: Source, limits: Limits) -> Image.Image:
    """Open lazily, refusing images whose header declares too many pixels."""

    def action() -> Image.Image:
        image = Image.open(source)
        width, height = image.size
        if width <= 0 or height <= 0:
            raise InvalidImageError("the image has no pixels")
        if width * height > limits.max_pixels:
            raise InvalidImageError(f"{width}x{height} is more than the {limits.max_pixels} pixels allowed")
        if getattr(image, "n_frames", 1) > limits.max_frames:
            raise InvalidImageError(f"more than {limits.max_frames} frames")
        return image

    return _decoding(source, action)


def orientation(image: Image.Image) -> int | None:
    try:
        value = image.getexif().get(TAG_ORIENTATION)
    except Exception:  # broken EXIF: the orientation is unknown, not an error
        return None
    return int(value) if isinstance(value, int) and 1 <= value <= 8 else None


def info(source: Source, limits: Limits) -> dict[str, Any]:
    """The values of image.info; width and height are the stored (undecoded) size.
    Only the header and EXIF are read: a remote input by range costs a block or two."""
    image = open_image(source, limits)
    exif = _exif(image)
    orient = orientation(image)
    return {
        "content_type": Image.MIME.get(image.format or "", "application/octet-stream"),
        "type": "image",
        "width": image.width,
        "height": image.height,
        "alpha": "A" in image.getbands() or "transparency" in image.info,
        "exif_orientation": orient,
        "rotation": ROTATION_OF_ORIENTATION.get(orient) if orient else None,
        "date_time": _text(exif.get(TAG_DATETIME_ORIGINAL) or exif.get(TAG_DATETIME)),
        "flash": bool(exif[TAG_FLASH] & 1) if isinstance(exif.get(TAG_FLASH), int) else None,
        "focal_length": _number(exif.get(TAG_FOCAL_LENGTH)),
        "iso_speed": _number(exif.get(TAG_ISO)),
        "exposure_time": _number(exif.get(TAG_EXPOSURE_TIME)),
    }


def _exif(image: Image.Image) -> dict[int, Any]:
    """Base IFD and Exif IFD tags together; whatever cannot be read is left out."""
    tags: dict[int, Any] = {}
    try:
        exif = image.getexif()
        tags.update(exif)
        tags.update(exif.get_ifd(EXIF_IFD))
    except Exception:
        pass
    return tags


def _text(value: Any) -> str | None:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    value = value.replace("\x00", "").strip()
    return value or None


def _number(value: Any) -> float | None:
    if isinstance(value, (tuple, list)):
        value = value[0] if value else None
    try:
        number = float(value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    return number if math.isfinite(number) else None


def target_size(width: int, height: int, box_w: int | None, box_h: int | None, crop: bool) -> tuple[int, int]:
    """Output size for a source of ``width`` x ``height`` (as displayed).

    Both given: crop fills the box exactly, fit keeps the aspect inside it. One given:
    the other follows the aspect ratio. None: the source size.
    """
    if box_w is None and box_h is None:
        return width, height
    if box_w is None:
        assert box_h is not None
        return max(1, round(width * box_h / height)), box_h
    if box_h is None:
        return box_w, max(1, round(height * box_w / width))
    if crop:
        return box_w, box_h
    scale = min(box_w / width, box_h / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def load_display(
    path: Path, limits: Limits, at_least: tuple[int, int] | None = None
) -> tuple[Image.Image, tuple[int, int]]:
    """Decode as displayed (EXIF orientation applied), no larger than needed.

    For JPEG, ``draft`` lets the decoder scale by 1/2, 1/4 or 1/8 while decoding,
    which is most of the speed of a thumbnail. Returns the image and the source's
    displayed size before any reduction.
    """
    image = open_image(path, limits)

    def action() -> tuple[Image.Image, tuple[int, int]]:
        orient = orientation(image)
        swap = orient in TRANSPOSED
        shown = (image.height, image.width) if swap else image.size
        if at_least is not None and image.format == "JPEG":
            need = (at_least[1], at_least[0]) if swap else at_least
            image.draft("RGB", need)
        image.load()
        return ImageOps.exif_transpose(image), shown

    return _decoding(path, action)


def resize_to(image: Image.Image, size: tuple[int, int], crop: bool) -> Image.Image:
    """Scale to ``size``: filling and centre-cropping when ``crop``, else stretching
    to a size that already has the image's aspect."""
    if crop:
        return ImageOps.fit(image, size, Image.Resampling.LANCZOS, centering=(0.5, 0.5))
    if image.size == size:
        return image
    return image.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def fit_into(image: Image.Image, size: tuple[int, int], crop: bool, background: tuple[int, ...]) -> Image.Image:
    """A cell of exactly ``size``: filled (crop) or fitted and centred on ``background``."""
    if crop:
        return resize_to(image, size, True)
    fitted = resize_to(image, target_size(image.width, image.height, size[0], size[1], False), False)
    cell = Image.new("RGBA", size, background)
    cell.paste(fitted.convert("RGBA"), ((size[0] - fitted.width) // 2, (size[1] - fitted.height) // 2))
    return cell


def strip(
    pictures: Iterable[Image.Image],
    count: int,
    cell: tuple[int, int],
    crop: bool,
    wrap: int | None,
    transparent: bool,
    progress: Callable[[int], None],
) -> Image.Image:
    """``count`` cells of ``cell`` size, left to right, ``wrap`` per row; fitted cells
    are centred on black (transparent when asked). Pictures are consumed one at a time."""
    columns = min(wrap or count, count)
    rows = -(-count // columns)
    if cell[0] * columns * cell[1] * rows > Limits().max_pixels:
        raise InvalidParametersError({"width": ["the strip would be larger than the pixel limit"]})
    background = (0, 0, 0, 0) if transparent else (0, 0, 0, 255)
    sheet = Image.new("RGBA", (cell[0] * columns, cell[1] * rows), background)
    for i, picture in enumerate(pictures):
        sheet.paste(fit_into(picture, cell, crop, background), ((i % columns) * cell[0], (i // columns) * cell[1]))
        progress(round(100 * (i + 1) / count))
    return sheet


def draw_play_icon(image: Image.Image) -> Image.Image:
    """A translucent disc with a play triangle in the centre (video-poster look)."""
    base = image.convert("RGBA")
    overlay = Image.new("RGBA", base.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    cx, cy = base.width / 2, base.height / 2
    r = max(4.0, min(base.size) * 0.15)
    draw.ellipse(
        (cx - r, cy - r, cx + r, cy + r), fill=(0, 0, 0, 110), outline=(255, 255, 255, 230), width=max(1, round(r / 10))
    )
    t = r * 0.55
    draw.polygon([(cx - t * 0.6, cy - t), (cx - t * 0.6, cy + t), (cx + t, cy)], fill=(255, 255, 255, 235))
    return Image.alpha_composite(base, overlay)


FORMATS = {
    "jpeg": ("JPEG", "jpg", "image/jpeg"),
    "png": ("PNG", "png", "image/png"),
    "gif": ("GIF", "gif", "image/gif"),
}


def save(image: Image.Image, path: Path, fmt: str, quality: int = 85) -> tuple[str, str]:
    """Write ``image`` as jpeg, png or gif; returns (extension, content type)."""
    pil_format, extension, content_type = FORMATS[fmt]
    if fmt == "jpeg":
        if image.mode in ("RGBA", "LA", "P"):
            rgba = image.convert("RGBA")
            flat = Image.new("RGB", rgba.size, (255, 255, 255))
            flat.paste(rgba, mask=rgba.getchannel("A"))
            image = flat
        elif image.mode != "RGB":
            image = image.convert("RGB")
        image.save(path, pil_format, quality=quality)
    else:
        image.save(path, pil_format)
    return extension, content_type
