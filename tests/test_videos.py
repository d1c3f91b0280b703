"""video.info, video.thumb and video.strip through the HTTP API on ../shared/media/video."""

from __future__ import annotations

import io
import json
from fractions import Fraction

import av
import httpx
import numpy as np
import pytest
from PIL import Image, ImageChops, ImageStat

from tests.conftest import MEDIA, Api
from tests.support.servers import Origin

SYNTH = "video/synthetic"
TRUTH = {c["file"]: c for c in json.loads((MEDIA / SYNTH / "ground_truth.json").read_text())}


def picture(url: str) -> Image.Image:
    return Image.open(io.BytesIO(httpx.get(url).content))


@pytest.fixture(scope="module")
def large_video(origin: Origin) -> str:
    """60 s of 640x360 noise at 5 fps, a keyframe every second, the index at the end
    (as most writers leave it): about 80 MB that compress badly, so a byte count shows
    what was read. Frame i is lit in proportion to i, so a thumb says which frame it is."""
    path = origin.root / "large.mp4"
    rng = np.random.default_rng(5)
    with av.open(str(path), "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=5)
        stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
        stream.codec_context.options = {"preset": "ultrafast", "crf": "12", "g": "5", "keyint_min": "5"}
        for i in range(300):
            level = int(40 + 170 * i / 299)
            pixels = (level + rng.integers(-30, 30, (360, 640, 3))).clip(0, 255).astype(np.uint8)
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 5)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return "/large.mp4"


@pytest.mark.parametrize("name", sorted(TRUTH))
def test_info_matches_the_ground_truth(api: Api, media: Origin, name: str) -> None:
    truth = TRUTH[name]
    info = api.result({"task_name": "video.info", "url": f"{media.url}/{SYNTH}/{name}"})
    # As image.info: the stored size, and the counter-clockwise rotation still to apply,
    # null when a mirror is needed too (the spec's image.info says so; video.info follows).
    assert (info["width"], info["height"]) == (truth["coded_width"], truth["coded_height"])
    rotation = float((truth["display_rotation_ccw_deg"] or 0) % 360)
    assert info["rotation"] == (None if truth.get("hflip") else rotation)
    num, _, den = truth["fps"].partition("/")
    assert info["frame_rate"] == pytest.approx(float(num) / float(den or 1), rel=1e-3)
    assert info["duration"] == pytest.approx(truth["duration_s"], abs=0.03)
    assert info["video_codec"] == truth["vcodec"]
    assert (info["audio_codec"] is None) == (truth["audio"] is None)
    assert info["alpha"] is False


def test_info_of_a_rotated_phone_clip(api: Api, media: Origin) -> None:
    info = api.result({"task_name": "video.info", "url": f"{media.url}/video/js_ffmpeg/iphone_rotated.mov"})
    assert info == {
        "content_type": "video/quicktime",
        "width": 568,  # stored; turned 270 degrees counter-clockwise, it is 320x568 as shot
        "height": 320,
        "duration": pytest.approx(2.202, abs=0.01),
        "frame_rate": pytest.approx(29.98, abs=0.05),
        "alpha": False,
        "rotation": 270.0,
        "audio_codec": "aac",
        "video_codec": "h264",
    }


@pytest.mark.parametrize(
    "name, content_type",
    [
        ("fixture.mkv", "video/x-matroska"),
        ("fixture.webm", "video/webm"),
        ("fixture.avi", "video/x-msvideo"),
        ("fixture.flv", "video/x-flv"),
        ("fixture.3gp", "video/3gpp"),
        ("fixture.mxf", "application/mxf"),
        ("fixture-raw.mts", "video/mp2t"),
        ("fixture.ps.mpg", "video/mpeg"),
        ("fixture.wmv.asf", "video/x-ms-asf"),
    ],
)
def test_info_reads_many_containers(api: Api, media: Origin, name: str, content_type: str) -> None:
    info = api.result({"task_name": "video.info", "url": f"{media.url}/video/file_type/{name}"})
    assert info["content_type"] == content_type
    assert info["width"] > 0 and info["duration"] > 0


def test_thumb_is_upright_and_sized(api: Api, media: Origin) -> None:
    upright = api.result(
        {"task_name": "video.thumb", "url": f"{media.url}/{SYNTH}/h264_160x96_25fps_2s_rot_none.mp4", "format": "png"}
    )
    assert (upright["width"], upright["height"]) == (160, 96)
    reference = picture(upright["output"]).convert("L")
    for name, angle in [
        ("h264_160x96_25fps_2s_rot_ccw90.mp4", 90),
        ("h264_160x96_25fps_2s_rot_cw90.mp4", -90),
        ("h264_160x96_25fps_2s_rot_180.mp4", 180),
    ]:
        thumb = api.result({"task_name": "video.thumb", "url": f"{media.url}/{SYNTH}/{name}", "format": "png"})
        shown = picture(thumb["output"]).convert("L")
        expected = reference.rotate(angle, expand=True)
        assert shown.size == expected.size, name
        assert ImageStat.Stat(ImageChops.difference(shown, expected)).mean[0] < 6, name


def test_thumb_time_crop_quality_and_poster(api: Api, media: Origin) -> None:
    url = f"{media.url}/video/js_ffmpeg/video-640-360.mp4"
    first = api.result({"task_name": "video.thumb", "url": url, "width": 160})
    later = api.result({"task_name": "video.thumb", "url": url, "width": 160, "time": 0.9})
    assert (first["width"], first["height"]) == (160, 90)
    assert (first["original_width"], first["original_height"], first["content_type"]) == (640, 360, "image/jpeg")
    assert first["duration"] == pytest.approx(1.0, abs=0.01)
    a, b = picture(first["output"]).convert("L"), picture(later["output"]).convert("L")
    assert ImageStat.Stat(ImageChops.difference(a, b)).mean[0] > 1  # a different moment
    crop = api.result(
        {"task_name": "video.thumb", "url": url, "width": 100, "height": 100, "crop": True, "quality": 20}
    )
    assert picture(crop["output"]).size == (100, 100)
    small = len(httpx.get(crop["output"]).content)
    best = api.result(
        {"task_name": "video.thumb", "url": url, "width": 100, "height": 100, "crop": True, "quality": 95}
    )
    assert len(httpx.get(best["output"]).content) > small
    beyond = api.result({"task_name": "video.thumb", "url": url, "time": 99, "poster": True})
    assert (beyond["width"], beyond["height"]) == (640, 360)


def test_strip_of_frames_at_equal_intervals(api: Api, media: Origin) -> None:
    url = f"{media.url}/video/js_ffmpeg/video-640-360.mp4"
    strip = api.result(
        {"task_name": "video.strip", "url": url, "width": 64, "height": 36, "count": 5, "wrap": 3, "format": "png"}
    )
    assert {k: strip[k] for k in ("count", "width", "height", "original_width", "original_height", "content_type")} == {
        "count": 5,
        "width": 192,
        "height": 72,
        "original_width": 640,
        "original_height": 360,
        "content_type": "image/png",
    }
    assert strip["frame_rate"] == pytest.approx(23.976, abs=0.01)
    image = picture(strip["output"]).convert("RGBA")
    assert image.size == (192, 72)
    pixel = image.getpixel((160, 54))
    assert isinstance(pixel, tuple) and pixel[3] == 0  # the sixth cell stays empty
    cells = [image.crop((c * 64, r * 36, c * 64 + 64, r * 36 + 36)).convert("L") for r, c in [(0, 0), (1, 1)]]
    assert ImageStat.Stat(ImageChops.difference(*cells)).mean[0] > 1


def test_bad_videos_end_in_a_clear_error(api: Api, media: Origin, origin: Origin) -> None:
    cases = [
        origin.add("text.mp4", b"not a video at all"),
        origin.add("empty.mp4", b""),
        origin.add(
            "playlist.m3u8", b"#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n"
        ),
        origin.add("concat.txt", b"ffconcat version 1.0\nfile '/etc/passwd'\n"),
        f"{media.url}/video/file_type/fixture-corrupt.mkv",
        f"{media.url}/audio_formats/file_type/fixture.mp3",
    ]
    statuses = api.create([{"task_name": "video.thumb", "url": url} for url in cases], block=True)
    for url, status in zip(cases, statuses):
        assert status["status"] == "error", url
        assert status["error"].startswith("InvalidContentError: "), (url, status["error"])
        assert "/tmp" not in status["error"] and "/etc" not in status["error"]
    assert (
        api.result({"task_name": "video.info", "url": f"{media.url}/{SYNTH}/mjpeg_160x96_10fps_1s.mov"})["width"] == 160
    )


def test_convert_rotated_phone_clip_comes_out_upright_and_streamable(api: Api, media: Origin) -> None:
    body = {
        "secret": api.secret,
        "tasks": {"task_name": "video.convert", "url": f"{media.url}/video/js_ffmpeg/iphone_rotated.mov", "width": 180},
    }
    with api.http.stream("POST", "/v2/create_stream", json=body) as r:
        lines = [json.loads(line) for line in r.iter_lines() if line]
    final = lines[-1]
    assert final["status"] == "success", final.get("error")
    assert any(isinstance(doc, dict) and isinstance(doc.get("progress"), int) for doc in lines[1:-1])
    out = final["result"]
    assert {
        k: out[k]
        for k in (
            "content_type",
            "width",
            "height",
            "original_width",
            "original_height",
            "rotation",
            "video_codec",
            "audio_codec",
            "alpha",
        )
    } == {
        "content_type": "video/mp4",
        "width": 180,
        "height": 320,
        "original_width": 320,
        "original_height": 568,
        "rotation": 0.0,
        "video_codec": "h264",
        "audio_codec": "aac",
        "alpha": False,
    }
    assert out["duration"] == pytest.approx(2.2, abs=0.05)
    data = httpx.get(out["output"]).content
    assert data.index(b"moov") < data.index(b"mdat")  # index first: plays while downloading


@pytest.mark.parametrize(
    "audio_codec, content_type, sample_rate",
    [("mp3", "video/mp4", 22050), ("mp2", "video/mp4", 48000), ("wmav2", "video/x-ms-asf", 44100)],
)
def test_convert_audio_codecs_and_rates(
    api: Api, media: Origin, audio_codec: str, content_type: str, sample_rate: int
) -> None:
    import av

    out = api.result(
        {
            "task_name": "video.convert",
            "url": f"{media.url}/video/js_ffmpeg/video-640-360.mp4",
            "width": 320,
            "height": 320,
            "crop": True,
            "audio_codec": audio_codec,
            "sample_rate": sample_rate,
            "video_bitrate": 500,
            "crf": 30,
            "gop": 12,
        }
    )
    assert (out["content_type"], out["audio_codec"], out["width"], out["height"]) == (
        content_type,
        audio_codec,
        320,
        320,
    )
    container = av.open(io.BytesIO(httpx.get(out["output"]).content), mode="r")
    assert container.streams.audio[0].codec_context.sample_rate == sample_rate
    keyframes = [p for p in container.demux(container.streams.video[0]) if p.is_keyframe]
    assert len(keyframes) >= 2  # gop 12 on 24 frames


def test_reverse_plays_backwards(api: Api, media: Origin) -> None:
    url = f"{media.url}/video/js_ffmpeg/video-640-360.mp4"
    out = api.result({"task_name": "video.reverse", "url": url, "width": 320})
    assert (out["width"], out["height"], out["audio_codec"]) == (320, 180, None)
    assert out["duration"] == pytest.approx(1.0, abs=0.05)
    last = picture(api.result({"task_name": "video.thumb", "url": url, "width": 320, "time": 99})["output"]).convert(
        "L"
    )
    first = picture(api.result({"task_name": "video.thumb", "url": url, "width": 320})["output"]).convert("L")
    reversed_first = picture(
        api.result({"task_name": "video.thumb", "url": out["output"], "width": 320})["output"]
    ).convert("L")
    assert (
        ImageStat.Stat(ImageChops.difference(reversed_first, last)).mean[0]
        < ImageStat.Stat(ImageChops.difference(reversed_first, first)).mean[0]
    )
    assert ImageStat.Stat(ImageChops.difference(reversed_first, last)).mean[0] < 8


def test_convert_parameters_are_validated(api: Api, media: Origin) -> None:
    [status] = api.create(
        {"task_name": "video.convert", "url": f"{media.url}/x", "audio_codec": "flac", "sample_rate": 8000, "crf": 99},
        block=True,
    )
    assert set(status["error"]["parameters"]) == {"audio_codec", "sample_rate", "crf"}


def _served(origin: Origin, path: str) -> int:
    return origin.served.get(path, 0)


def test_thumb_of_a_large_remote_file_reads_only_what_it_needs(api: Api, origin: Origin, large_video: str) -> None:
    size = (origin.root / large_video.lstrip("/")).stat().st_size
    before = _served(origin, large_video)
    thumb = api.result({"task_name": "video.thumb", "url": origin.url + large_video, "time": 30, "format": "png"})
    read = _served(origin, large_video) - before
    assert read < 0.05 * size, f"read {read} of {size} bytes"
    assert (thumb["width"], thumb["height"], thumb["duration"]) == (640, 360, pytest.approx(60.0, abs=0.01))
    level = ImageStat.Stat(picture(thumb["output"]).convert("L")).mean[0]
    assert level == pytest.approx(40 + 170 * 150 / 299, abs=6)  # frame 150: the one at 30 s


def test_origins_without_ranges_are_downloaded_whole(api: Api, origin: Origin, large_video: str) -> None:
    size = (origin.root / large_video.lstrip("/")).stat().st_size
    ranged = api.result({"task_name": "video.thumb", "url": origin.url + large_video, "time": 30, "format": "png"})
    before = _served(origin, large_video)
    whole = api.result(
        {"task_name": "video.thumb", "url": f"{origin.url}{large_video}?ranges=no", "time": 30, "format": "png"}
    )
    assert _served(origin, large_video) - before >= size  # the fallback downloads all of it
    assert ImageStat.Stat(ImageChops.difference(picture(ranged["output"]), picture(whole["output"]))).mean == [0, 0, 0]
    strip = api.result(
        {"task_name": "video.strip", "url": origin.url + large_video, "width": 64, "height": 36, "count": 4}
    )
    assert strip["count"] == 4 and strip["duration"] == pytest.approx(60.0, abs=0.01)
