"""image.info, image.thumb, image.strip and image.gif (spec: Tasks Reference)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

from PIL import Image
from pydantic import Field, field_validator

from dragon.errors import InvalidParametersError
from dragon.media import images
from dragon.registry import Resources, TaskContext, TaskParams, task
from dragon.tasks.fields import CellHeight, CellWidth, Crop, Height, InputUrl, Poster, Width, Wrap

LIMITS = images.Limits()
MAX_INPUT_BYTES = 256 * 1024 * 1024
IMAGE = Resources(cpus=0.5, memory_mb=512)
Size = Field(default=None, ge=1, le=10_000)


class InfoParams(TaskParams):
    url: InputUrl


@task(
    "image.info",
    InfoParams,
    resources=IMAGE,
    values=(
        "content_type",
        "type",
        "width",
        "height",
        "alpha",
        "exif_orientation",
        "rotation",
        "date_time",
        "flash",
        "focal_length",
        "iso_speed",
        "exposure_time",
    ),
)
def image_info(ctx: TaskContext, params: InfoParams) -> dict:
    """EXIF fields that cannot be read are null; width and height are the stored size."""
    with ctx.open(params.url, MAX_INPUT_BYTES) as source:
        return images.info(source, LIMITS)


class ThumbParams(TaskParams):
    url: InputUrl
    width: Width = Size
    height: Height = Size
    crop: Crop = False
    rotation: Literal[0, 90, 180, 270] = Field(
        default=0, description="Counter-clockwise rotation in degrees, after EXIF orientation and sizing."
    )
    poster: Poster = False
    format: Literal["jpeg", "gif", "png"] = Field(default="jpeg", description="Image format of the output.")


@task(
    "image.thumb",
    ThumbParams,
    resources=IMAGE,
    values=("width", "height", "original_width", "original_height"),
    files=("output",),
)
def image_thumb(ctx: TaskContext, params: ThumbParams) -> dict:
    """Orientation first, then size (fit or crop), then the counter-clockwise rotation."""
    source = ctx.fetch(params.url, MAX_INPUT_BYTES).path
    probe = images.open_image(source, LIMITS)
    swap = images.orientation(probe) in images.TRANSPOSED
    shown_w, shown_h = (probe.height, probe.width) if swap else probe.size
    size = images.target_size(shown_w, shown_h, params.width, params.height, params.crop)
    decode_at = _cover(shown_w, shown_h, size) if params.crop else size
    picture, _ = images.load_display(source, LIMITS, at_least=decode_at)
    thumb = images.resize_to(picture, size, params.crop)
    if params.rotation:
        thumb = thumb.rotate(params.rotation, expand=True)
    if params.poster:
        thumb = images.draw_play_icon(thumb)
    out = ctx.scratch / "thumb"
    extension, content_type = images.save(thumb, out, params.format)
    return {
        "width": thumb.width,
        "height": thumb.height,
        "original_width": probe.width,
        "original_height": probe.height,
        "output": ctx.store(out, extension, content_type),
    }


def _cover(width: int, height: int, box: tuple[int, int]) -> tuple[int, int]:
    """The smallest size with the source's aspect that covers ``box`` (crop mode)."""
    scale = max(box[0] / width, box[1] / height)
    return max(1, round(width * scale)), max(1, round(height * scale))


class StripParams(TaskParams):
    urls: list[str] = Field(
        min_length=1, max_length=LIMITS.max_frames, description="The images, one cell each, in order."
    )
    width: CellWidth = Field(ge=1, le=4096)
    height: CellHeight = Field(ge=1, le=4096)
    crop: Crop = False
    wrap: Wrap = Field(default=None, ge=1)
    format: Literal["jpeg", "png"] = Field(
        default="jpeg", description="Image format (PNG keeps empty cells transparent)."
    )


@task(
    "image.strip", StripParams, resources=IMAGE, values=("count", "width", "height", "content_type"), files=("output",)
)
def image_strip(ctx: TaskContext, params: StripParams) -> dict:
    """Cells of width x height, left to right, ``wrap`` per row; fitted cells are
    centred on black (transparent in PNG)."""
    paths = [ctx.fetch(url, MAX_INPUT_BYTES).path for url in params.urls]
    cell = (params.width, params.height)
    strip = images.strip(
        _displayed(paths, cell), len(paths), cell, params.crop, params.wrap, params.format == "png", ctx.progress
    )
    out = ctx.scratch / "strip"
    extension, content_type = images.save(strip, out, params.format)
    return {
        "count": len(paths),
        "width": strip.width,
        "height": strip.height,
        "content_type": content_type,
        "output": ctx.store(out, extension, content_type),
    }


def _displayed(paths: list[Path], cell: tuple[int, int]) -> Iterator[Image.Image]:
    """Inputs decoded one at a time, so memory holds one source image."""
    for path in paths:
        picture, _ = images.load_display(path, LIMITS, at_least=cell)
        yield picture


class GifParams(TaskParams):
    images: list[str] = Field(
        min_length=1, max_length=LIMITS.max_frames, description="The images, one frame each, in order."
    )
    loop: int = Field(default=0, ge=-1, le=65535, description="0: loop forever; -1: play once; N: repeat N times.")
    frame_duration: float = Field(default=0.1, gt=0, le=655.35, description="Seconds each frame shows (to 1/100 s).")
    width: Width = Size
    height: Height = Size

    @field_validator("frame_duration")
    @classmethod
    def _centiseconds(cls, value: float) -> float:
        return max(0.01, round(value, 2))


@task("image.gif", GifParams, resources=IMAGE, values=("width", "height", "count"), files=("output",))
def image_gif(ctx: TaskContext, params: GifParams) -> dict:
    """Frames are fitted into one size (the first image's unless width/height say),
    centred on black. loop: 0 forever, -1 play once, N repeat N times."""
    paths = [ctx.fetch(url, MAX_INPUT_BYTES).path for url in params.images]
    first, shown = images.load_display(paths[0], LIMITS)
    size = images.target_size(shown[0], shown[1], params.width, params.height, False)
    if params.width and params.height:
        size = (params.width, params.height)
    if size[0] * size[1] * len(paths) > LIMITS.max_pixels * 4:
        raise InvalidParametersError({"images": ["the animation would be larger than the pixel limit"]})
    frames = []
    for i, path in enumerate(paths):
        picture = first if i == 0 else images.load_display(path, LIMITS, at_least=size)[0]
        cell = images.fit_into(picture, size, False, (0, 0, 0, 255)).convert("RGB")
        frames.append(cell.quantize(256, dither=Image.Dither.FLOYDSTEINBERG))
        ctx.progress(round(100 * (i + 1) / len(paths)))
    out = ctx.scratch / "anim.gif"
    options = {
        "save_all": True,
        "append_images": frames[1:],
        "duration": round(params.frame_duration * 1000),
        "disposal": 1,
    }
    if params.loop >= 0:
        options["loop"] = params.loop
    frames[0].save(out, "GIF", **options)
    return {"width": size[0], "height": size[1], "count": len(frames), "output": ctx.store(out, "gif", "image/gif")}
