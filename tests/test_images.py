"""image.info, image.thumb, image.strip, image.gif through the HTTP API, on the
shared test media (EXIF camera files, orientation sets, Pillow's odd files)."""

from __future__ import annotations

import io
import random
import struct
import zlib
from typing import Any

import httpx
import pytest
from PIL import GifImagePlugin, Image, ImageChops, ImageStat

from tests.conftest import Api
from tests.support.servers import Origin

EXIF = "images_exif/exif_samples"
ORIENT = "images_exif/orientation_recurser"
PILLOW = "images_exif/pillow"


def picture(url: str) -> Image.Image:
    r = httpx.get(url)
    assert r.status_code == 200
    return Image.open(io.BytesIO(r.content))


def test_info_reads_camera_exif(api: Api, media: Origin) -> None:
    info = api.result({"task_name": "image.info", "url": f"{media.url}/{EXIF}/Canon_40D.jpg"})
    assert info == {
        "content_type": "image/jpeg",
        "type": "image",
        "width": 100,
        "height": 68,
        "alpha": False,
        "exif_orientation": 1,
        "rotation": 0,
        "date_time": "2008:05:30 15:56:01",
        "flash": True,
        "focal_length": 135.0,
        "iso_speed": 100.0,
        "exposure_time": 0.00625,
    }


@pytest.mark.parametrize(
    "name, orientation, rotation, size",
    [
        ("Landscape_1.jpg", 1, 0, (1800, 1200)),
        ("Landscape_3.jpg", 3, 180, (1800, 1200)),
        ("Landscape_6.jpg", 6, 270, (1200, 1800)),
        ("Landscape_8.jpg", 8, 90, (1200, 1800)),
        ("Landscape_2.jpg", 2, None, (1800, 1200)),
        ("Landscape_5.jpg", 5, None, (1200, 1800)),
        ("Landscape_0.jpg", None, None, (1800, 1200)),
    ],
)
def test_info_orientation_and_rotation(
    api: Api, media: Origin, name: str, orientation: Any, rotation: Any, size: tuple
) -> None:
    info = api.result({"task_name": "image.info", "url": f"{media.url}/{ORIENT}/{name}"})
    assert (info["exif_orientation"], info["rotation"]) == (orientation, rotation)
    assert (info["width"], info["height"]) == size


@pytest.mark.parametrize(
    "name, content_type, alpha",
    [
        ("hopper_orientation_2.webp", "image/webp", False),
        ("exif_imagemagick_orientation.png", "image/png", False),
        ("xmp_tags_orientation.png", "image/png", True),
        ("avif_rot1mir0.avif", "image/avif", False),
        ("exif_typeerror.jpg", "image/jpeg", False),
        ("invalid-exif.jpg", "image/jpeg", False),
        ("truncated_exif_dpi.jpg", "image/jpeg", False),
        ("hopper_bad_exif.jpg", "image/jpeg", False),
        ("invalid-exif-without-x-resolution.jpg", "image/jpeg", False),
        ("exif_gps.jpg", "image/jpeg", False),
    ],
)
def test_info_survives_odd_formats_and_broken_exif(
    api: Api, media: Origin, name: str, content_type: str, alpha: bool
) -> None:
    info = api.result({"task_name": "image.info", "url": f"{media.url}/{PILLOW}/{name}"})
    assert info["content_type"] == content_type
    assert info["alpha"] is alpha
    assert info["width"] > 0 and info["height"] > 0


def test_info_keeps_the_nul_free_date(api: Api, media: Origin) -> None:
    info = api.result({"task_name": "image.info", "url": f"{media.url}/{PILLOW}/invalid-exif-without-x-resolution.jpg"})
    assert info["date_time"] == "2016:12:03 11:17:43"


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 10)) + chunk(b"IEND", b"")
    )


def test_bad_images_end_in_invalid_image_error(api: Api, media: Origin, origin: Origin) -> None:
    jpeg = (media.root / ORIENT / "Landscape_1.jpg").read_bytes()
    avif = bytearray((media.root / "images_exif/pillow/avif_rot1mir0.avif").read_bytes())
    flips = random.Random(10)  # these flips make the AVIF decoder itself fail (RuntimeError)
    for i in flips.sample(range(len(avif) // 3, len(avif)), len(avif) // 50):
        avif[i] ^= 0xFF
    cases = {
        "empty": origin.add("empty.jpg", b""),
        "text": origin.add("text.jpg", b"this is not an image at all"),
        "truncated": origin.add("truncated.jpg", jpeg[: len(jpeg) // 3]),
        "bomb": origin.add("bomb.png", _png_header_only(100_000, 100_000)),
        "heif": f"{media.url}/{EXIF}/heic_samplefilehub.heif",
        "corrupt avif": origin.add("corrupt.avif", bytes(avif)),
    }
    statuses = api.create([{"task_name": "image.thumb", "url": url, "width": 50} for url in cases.values()], block=True)
    for name, status in zip(cases, statuses):
        assert status["status"] == "error", name
        assert status["error"].startswith("InvalidImageError: "), (name, status["error"])
    assert "empty" in statuses[0]["error"]
    assert "pixels" in statuses[3]["error"]
    # The worker pool survives and serves the next task.
    assert api.result({"task_name": "image.info", "url": f"{media.url}/{EXIF}/Nikon_D70.jpg"})["width"] == 100


def test_thumb_applies_exif_orientation_before_sizing(api: Api, media: Origin) -> None:
    upright = api.result(
        {"task_name": "image.thumb", "url": f"{media.url}/{ORIENT}/Landscape_1.jpg", "width": 240, "height": 240}
    )
    assert (upright["width"], upright["height"]) == (240, 160)
    assert (upright["original_width"], upright["original_height"]) == (1800, 1200)
    reference = picture(upright["output"]).convert("L")
    for n in range(2, 9):
        thumb = api.result(
            {"task_name": "image.thumb", "url": f"{media.url}/{ORIENT}/Landscape_{n}.jpg", "width": 240, "height": 240}
        )
        assert (thumb["width"], thumb["height"]) == (240, 160), n
        diff = ImageChops.difference(reference, picture(thumb["output"]).convert("L"))
        assert ImageStat.Stat(diff).mean[0] < 12, f"orientation {n} does not look upright"


def test_thumb_crop_rotation_formats_and_single_dimension(api: Api, media: Origin) -> None:
    url = f"{media.url}/{ORIENT}/Portrait_6.jpg"  # displays 1200x1800
    crop = api.result({"task_name": "image.thumb", "url": url, "width": 100, "height": 100, "crop": True})
    assert (crop["width"], crop["height"]) == (100, 100)
    assert picture(crop["output"]).size == (100, 100)
    only_width = api.result({"task_name": "image.thumb", "url": url, "width": 120})
    assert (only_width["width"], only_width["height"]) == (120, 180)
    rotated = api.result({"task_name": "image.thumb", "url": url, "width": 120, "rotation": 90, "format": "png"})
    assert (rotated["width"], rotated["height"]) == (180, 120)
    image = picture(rotated["output"])
    assert image.format == "PNG" and image.size == (180, 120)
    gif = api.result({"task_name": "image.thumb", "url": url, "height": 60, "format": "gif"})
    assert picture(gif["output"]).format == "GIF"
    assert httpx.get(gif["output"]).headers["content-type"] == "image/gif"


def test_thumb_poster_draws_a_play_icon_in_the_centre(api: Api, media: Origin) -> None:
    url = f"{media.url}/{EXIF}/gps_DSCN0010.jpg"
    plain = picture(api.result({"task_name": "image.thumb", "url": url, "width": 200})["output"]).convert("L")
    poster = picture(
        api.result({"task_name": "image.thumb", "url": url, "width": 200, "poster": True})["output"]
    ).convert("L")
    assert plain.size == poster.size
    centre = (poster.width // 2 - 6, poster.height // 2 - 6, poster.width // 2 + 6, poster.height // 2 + 6)
    assert ImageStat.Stat(poster.crop(centre)).mean[0] > 200  # the white triangle
    corner = (0, 0, 20, 20)
    assert abs(ImageStat.Stat(poster.crop(corner)).mean[0] - ImageStat.Stat(plain.crop(corner)).mean[0]) < 3


def test_thumb_parameters_are_validated(api: Api, media: Origin) -> None:
    status = api.run(
        {"task_name": "image.thumb", "url": f"{media.url}/{EXIF}/Canon_40D.jpg", "rotation": 45, "format": "bmp"}
    )
    assert set(status["error"]["parameters"]) == {"rotation", "format"}
    assert api.run({"task_name": "image.thumb"})["error"] == {"parameters": {"url": ["this field is required"]}}


def test_strip_lays_cells_out_with_wrap(api: Api, media: Origin) -> None:
    urls = [f"{media.url}/{EXIF}/{n}" for n in ("Canon_40D.jpg", "Nikon_D70.jpg", "Fujifilm_FinePix_E500.jpg")]
    strip = api.result(
        {"task_name": "image.strip", "urls": urls, "width": 80, "height": 60, "wrap": 2, "format": "png"}
    )
    assert strip == {**strip, "count": 3, "width": 160, "height": 120, "content_type": "image/png"}
    image = picture(strip["output"])
    assert image.size == (160, 120)
    pixel = image.convert("RGBA").getpixel((120, 90))
    assert isinstance(pixel, tuple) and pixel[3] == 0  # the empty fourth cell
    line = api.result({"task_name": "image.strip", "urls": urls, "width": 50, "height": 50, "crop": True})
    assert (line["width"], line["height"], line["content_type"]) == (150, 50, "image/jpeg")


def test_gif_frames_loop_and_duration(api: Api, media: Origin) -> None:
    urls = [f"{media.url}/{EXIF}/{n}" for n in ("Canon_40D.jpg", "Fujifilm_FinePix_E500.jpg", "Nikon_D70.jpg")]
    gif = api.result({"task_name": "image.gif", "images": urls, "frame_duration": 0.123})
    image = picture(gif["output"])
    assert isinstance(image, GifImagePlugin.GifImageFile) and image.n_frames == 3 and image.size == (100, 68)
    assert image.info["duration"] == 120 and image.info["loop"] == 0
    once = api.result({"task_name": "image.gif", "images": urls, "loop": -1, "width": 40, "height": 40})
    image = picture(once["output"])
    assert image.size == (40, 40) and "loop" not in image.info


def test_info_of_a_large_remote_image_reads_its_header(api: Api, origin: Origin) -> None:
    noise = Image.effect_noise((4000, 3000), 80).convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: turn right
    buffer = io.BytesIO()
    noise.save(buffer, "JPEG", quality=95, exif=exif.tobytes())
    url = origin.add("large.jpg", buffer.getvalue())
    info = api.result({"task_name": "image.info", "url": url})
    assert (info["width"], info["height"], info["exif_orientation"], info["rotation"]) == (4000, 3000, 6, 270)
    assert origin.served["/large.jpg"] < 0.05 * len(buffer.getvalue())
