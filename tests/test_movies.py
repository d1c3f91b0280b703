"""video.create through the HTTP API: SXML documents (the examples of the public
record, with local inputs) become playable MP4s, previews and thumbnails."""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from PIL import Image

from tests.conftest import ROOT, Api, DragonProcess
from tests.support.movies import THREE_COLOURS, dominant_colours
from tests.support.servers import Origin

FIXTURES = ROOT / "tests" / "fixtures" / "sxml"
PHOTOS = "images_exif/exif_samples"


def probe(url: str, tmp_path: Path) -> dict[str, Any]:
    """What a player sees: every frame decoded, the container, the streams' codecs, sizes and durations."""
    path = tmp_path / url.rsplit("/", 1)[-1]
    response = httpx.get(url, timeout=60)
    path.write_bytes(response.content)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        sound = container.streams.audio[0] if container.streams.audio else None
        rate, duration = stream.average_rate or stream.guessed_rate, container.duration
        assert rate is not None and duration is not None
        seen = {
            "content_type": response.headers.get("content-type"),
            "format": container.format.name,
            "video_codec": stream.codec_context.codec.canonical_name,
            "audio_codec": sound.codec_context.codec.canonical_name if sound else None,
            "audio_rate": sound.rate if sound else None,
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "aspect": float(stream.sample_aspect_ratio or 1),
            "rate": float(rate),
            "duration": duration / 1_000_000,
            "audio": sound is not None,
        }
        seen["frames"] = sum(1 for _ in container.decode(stream))
        return seen


def create(api: Api, definition: str, **params: Any) -> dict[str, Any]:
    """The final status of one video.create (renders outlast the test service's block time-out)."""
    [queued] = api.create({"task_name": "video.create", "definition": definition, "antialias": 1, **params})
    [status] = api.wait([queued["key"]], timeout=180)
    return status


def test_the_developer_hello_world_renders_to_a_playable_movie(api: Api, media: Origin, tmp_path: Path) -> None:
    definition = (FIXTURES / "hello-world.xml").read_text()
    definition = definition.replace(
        "http://s3.amazonaws.com/stupeflix-assets/apiusecase/footage.mov", f"{media.url}/video/file_type/fixture.3gp"
    )
    definition = definition.replace(
        "http://s3.amazonaws.com/stupeflix-assets/apiusecase/logo_stupeflix.png",
        f"{media.url}/images_exif/pillow/exif_imagemagick_orientation.png",
    )
    definition = definition.replace(
        "http://s3.amazonaws.com/stupeflix-assets/apiusecase/branding-postroll.mp4",
        f"{media.url}/video/js_ffmpeg/iphone_rotated.mov",
    )
    status = create(api, definition)
    assert status["status"] == "success", status.get("error")
    result = status["result"]
    assert result["duration"] == pytest.approx(5.0 + 2.202 - 0.5, abs=0.01)
    assert (result["width"], result["height"]) == (640, 360)
    seen = probe(result["export"], tmp_path)
    assert (seen["width"], seen["height"], seen["rate"]) == (640, 360, 25.0)
    assert seen["frames"] == round(result["duration"] * 25)
    assert seen["duration"] == pytest.approx(result["duration"], abs=0.1)
    assert seen["audio"], "the videos' own sound is missing"
    thumbnail = Image.open(io.BytesIO(httpx.get(result["thumbnail"]).content))
    assert (thumbnail.format, thumbnail.size) == ("JPEG", (640, 360))
    assert "preview" not in result


def test_audio_slaved_to_pictures_with_a_transition_lasts_23_seconds(api: Api, media: Origin, tmp_path: Path) -> None:
    definition = (FIXTURES / "slaved-audio.xml").read_text()
    for name, path in [("a.jpg", "Canon_40D.jpg"), ("b.jpg", "Nikon_D70.jpg"), ("c.jpg", "Kodak_CX7530.jpg")]:
        definition = definition.replace(f"http://x/{name}", f"{media.url}/{PHOTOS}/{path}")
    definition = definition.replace("http://x/song1.mp3", f"{media.url}/audio_beats/synthetic/syn_rock_4-4_120bpm.flac")
    definition = definition.replace("http://x/song2.mp3", f"{media.url}/audio_formats/file_type/fixture.mp3")
    status = create(api, definition, profile="mobile-small")
    assert status["status"] == "success", status.get("error")
    assert status["result"]["duration"] == pytest.approx(23.0)
    seen = probe(status["result"]["export"], tmp_path)
    assert (seen["width"], seen["height"], seen["rate"]) == (176, 144, 15.0)
    assert seen["frames"] == 23 * 15 and seen["audio"]


def test_a_preview_is_published_as_a_partial_result_before_the_export(api: Api, media: Origin, tmp_path: Path) -> None:
    definition = (
        f'<effect type="kenburns" duration="3"><image filename="{media.url}/{PHOTOS}/Canon_40D.jpg"/></effect>'
        '<transition type="circle"/>'
        f'<effect type="panel" duration="3"><image filename="{media.url}/{PHOTOS}/Nikon_D70.jpg"/></effect>'
    )
    statuses = stream(
        api,
        {
            "task_name": "video.create",
            "definition": definition,
            "preview": True,
            "antialias": 1,
            "profile": "quicktime-small",
        },
    )
    partial = [s for s in statuses[1:] if s["status"] == "executing" and s.get("result")]
    assert partial, statuses
    assert set(partial[0]["result"]) == {"duration", "preview"} and partial[0]["result"]["duration"] == pytest.approx(
        5.0
    )
    final = statuses[-1]
    assert final["status"] == "success" and final["result"]["preview"] == partial[0]["result"]["preview"]
    # The spec's previews are FLV streams ("…/preview.flv").
    assert final["result"]["preview"].endswith(".flv")
    preview = probe(final["result"]["preview"], tmp_path)
    assert (preview["format"], preview["video_codec"]) == ("flv", "h264")
    assert (preview["width"], preview["height"]) == (160, 120) and preview["frames"] == 5 * 25


def test_progress_moves_as_frames_render_through_the_preview_and_the_export(api: Api, media: Origin) -> None:
    # Workers report progress at most every 0.1 s: the movie is long enough (19 s) that its
    # 160x120 preview alone takes several report intervals to render.
    definition = (
        f'<effect type="kenburns" duration="10"><image filename="{media.url}/{PHOTOS}/Canon_40D.jpg"/></effect>'
        '<transition type="crossfade"/>'
        f'<effect type="kenburns" duration="10"><image filename="{media.url}/{PHOTOS}/Nikon_D70.jpg"/></effect>'
    )
    statuses = stream(
        api,
        {
            "task_name": "video.create",
            "definition": definition,
            "preview": True,
            "antialias": 1,
            "profile": "quicktime-small",
        },
    )
    assert statuses[-1]["status"] == "success", statuses[-1].get("error")
    executing = [s for s in statuses[1:] if s["status"] == "executing"]
    at = next(i for i, s in enumerate(executing) if s.get("result"))  # the partial result: later statuses keep it
    progress = [s["progress"] for s in executing if s.get("progress") is not None]
    assert progress == sorted(progress), progress
    # The preview has a quarter of the export's pixels: it is the first fifth of the work.
    assert executing[at]["progress"] == 20
    before = {s["progress"] for s in executing[:at] if s.get("progress") is not None}
    after = {s["progress"] for s in executing[at + 1 :] if s.get("progress") is not None}
    assert len({p for p in before if 0 < p < 20}) >= 3, progress  # during the preview, not a jump at its end
    assert len({p for p in after if 20 < p < 100}) >= 3, progress


def stream(api: Api, task: dict[str, Any]) -> list[dict[str, Any]]:
    """Every status line of one task created with /v2/create_stream, until it ends."""
    body = {"secret": api.secret, "tasks": [task]}
    with api.http.stream("POST", "/v2/create_stream", json=body, timeout=180) as response:
        return [json.loads(line) for line in response.iter_lines() if line]


@pytest.mark.parametrize(
    "profile, container, video, audio, size, rate",
    [
        ("flash-small", "flv", "flv1", "mp3", (320, 240), 44100),
        ("flash-h264", "flv", "h264", "aac", (640, 480), 44100),
        ("wmv1", "asf", "wmv1", "wmav1", (640, 480), 44100),
        ("mobile-small", "mov,mp4,m4a,3gp,3g2,mj2", "mpeg4", "aac", (176, 144), 44100),
        ("dvd-ntsc-16-9-h", "mpeg", "mpeg2video", "mp2", (352, 240), 48000),
        ("dvd-mpeg1-small", "mpeg", "mpeg1video", "mp2", (176, 144), 44100),
    ],
)
def test_profiles_write_the_container_and_codecs_they_name(
    api: Api,
    media: Origin,
    tmp_path: Path,
    profile: str,
    container: str,
    video: str,
    audio: str,
    size: tuple[int, int],
    rate: int,
) -> None:
    definition = (
        '<stack><effect type="none" duration="2"><image color="#2060a0"/></effect>'
        f'<audio filename="{media.url}/audio_formats/file_type/fixture.mp3" duration=".."/></stack>'
    )
    status = create(api, definition, profile=profile)
    assert status["status"] == "success", status.get("error")
    url = status["result"]["export"]
    extension, content_type = {
        "flv": ("flv", "video/x-flv"),
        "asf": ("wmv", "video/x-ms-wmv"),
        "mpeg": ("mpg", "video/mpeg"),
    }.get(container, ("mp4", "video/mp4"))
    assert url.endswith(f".{extension}")
    seen = probe(url, tmp_path)
    assert seen["content_type"] == content_type
    assert (seen["format"], seen["video_codec"], seen["audio_codec"]) == (container, video, audio)
    assert ((seen["width"], seen["height"]), seen["audio_rate"]) == (size, rate)
    assert (status["result"]["width"], status["result"]["height"]) == size
    assert seen["frames"] == round(2 * seen["rate"])
    if profile.startswith("dvd-ntsc-16-9"):  # stored at 352 columns, shown at 16:9
        assert seen["width"] * seen["aspect"] / seen["height"] == pytest.approx(16 / 9)


def test_a_long_movie_renders_in_segments_that_join_seamlessly(api: Api, tmp_path: Path) -> None:
    # The test service renders 5-second segments: this movie is three of them.
    body = {
        "secret": api.secret,
        "tasks": [
            {"task_name": "video.create", "definition": THREE_COLOURS, "antialias": 1, "profile": "mobile-small"}
        ],
    }
    with api.http.stream("POST", "/v2/create_stream", json=body, timeout=120) as response:
        statuses = [json.loads(line) for line in response.iter_lines() if line]
    progress = [s["progress"] for s in statuses[1:] if s["status"] == "executing" and s.get("progress") is not None]
    # Segments report frames as they render; how many reports a stream sees depends on the machine's
    # speed (reports go at most every 0.1 s), so only their order and range are certain.
    assert progress and progress == sorted(progress) and all(0 <= p <= 100 for p in progress), progress
    final = statuses[-1]
    assert final["status"] == "success", final.get("error")
    path = tmp_path / "movie.mp4"
    path.write_bytes(httpx.get(final["result"]["export"]).content)
    assert dominant_colours(path) == [0] * 60 + [1] * 60 + [2] * 60  # 12 s at 15 fps


def test_text_to_speech_sets_the_length_of_its_stack(api: Api, tmp_path: Path) -> None:
    definition = (
        '<stack><effect type="none"><image color="#203040"/></effect>'
        '<audio voice="neospeech:julie" margin-end="1">Hello from Dragon, the movie maker.</audio></stack>'
    )
    status = create(api, definition, profile="mobile-small")
    assert status["status"] == "success", status.get("error")
    assert 2.0 < status["result"]["duration"] < 6.0
    assert probe(status["result"]["export"], tmp_path)["audio"]


@pytest.mark.parametrize(
    "definition, error",
    [
        ('<movie service="craftsman-1.0">\n<body>\n<effect type="none">\n</body></movie>', "InvalidXMLError: line 4"),
        ('<movie service="craftsman-1.0"><body>\n<sparkle/></body></movie>', "InvalidXMLError: line 2"),
        (
            '<stack><effect type="none" duration="2"><image color="#000000"/></effect>\n<transition type="crossfade"/></stack>',
            "InvalidXMLError: line 2",
        ),
        ('<widget type="set.scrapbook.text.01b.m.01"/>', "InvalidXMLError: line 1"),
        ('<effect type="none" duration="2"><image color="#00000g"/></effect>', "InvalidXMLError: line 1"),
        ('<effect type="none"><image filename="http://127.0.0.1:9/missing.jpg"/></effect>', "CouldNotDownloadError: "),
        (
            '<stack><effect type="none"><image color="#000000"/></effect><text type="zone" fontname="wingdings">x</text></stack>',
            "InvalidFontError: ",
        ),
        (
            '<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
            '<movie service="craftsman-1.0"><body><text type="zone">&b;</text></body></movie>',
            "InvalidXMLError: ",
        ),
        (
            '<?xml version="1.0"?><!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            '<movie service="craftsman-1.0"><body><text type="zone">&x;</text></body></movie>',
            "InvalidXMLError: ",
        ),
        ('<effect type="none"><image filename="file:///etc/passwd"/></effect>', "CouldNotDownloadError: "),
        ('<effect type="none" duration="20000"><image color="#000000"/></effect>', "InvalidXMLError: line 1"),
        (
            '<stack><effect type="none" duration="1"><image color="#000000"/></effect><text type="zone" fontsize="100000">x</text></stack>',
            "InvalidContentError: ",
        ),
    ],
    ids=[
        "malformed",
        "unknown-element",
        "misplaced-transition",
        "proprietary-widget",
        "bad-colour",
        "missing-input",
        "unknown-font",
        "entity-expansion",
        "external-entity",
        "local-file",
        "too-long",
        "font-size",
    ],
)
def test_bad_definitions_end_in_a_clear_error(api: Api, definition: str, error: str) -> None:
    status = create(api, definition)
    assert status["status"] == "error"
    assert status["error"].startswith(error), status["error"]


def test_unknown_profiles_and_antialias_values_are_parameter_errors(api: Api) -> None:
    status = create(api, "<effect type='none'><image color='#000000'/></effect>", profile="8k", antialias=3)
    assert status["status"] == "error"
    assert set(status["error"]["parameters"]) == {"profile", "antialias"}


def test_ignored_attributes_and_filters_are_listed_in_details(api: Api) -> None:
    definition = (
        '<effect type="none" duration="1" sparkle="yes"><image color="#102030"><filter type="dof"/></image></effect>'
    )
    status = create(api, definition, profile="mobile-small", export=False)
    assert status["status"] == "success" and "export" not in status["result"] and "thumbnail" in status["result"]
    [detailed] = api.status([status["key"]], details="true")
    warnings = detailed["details"]["warnings"]
    assert any("sparkle" in w for w in warnings) and any("dof" in w for w in warnings), warnings


def test_a_director_theme_renders_as_a_captioned_slideshow(api: Api, media: Origin, tmp_path: Path) -> None:
    definition = (FIXTURES / "theme-widget.xml").read_text()
    for url in sorted(set(__import__("re").findall(r'filename="([^"]+)"', definition))):
        replacement = (
            f"{media.url}/audio_formats/file_type/fixture.mp3"
            if url.endswith((".mp3", ".m4a"))
            else f"{media.url}/{PHOTOS}/Canon_40D.jpg"
        )
        definition = definition.replace(url, replacement)
    status = create(api, definition, profile="mobile-small")
    assert status["status"] == "success", status.get("error")
    assert probe(status["result"]["export"], tmp_path)["frames"] == round(status["result"]["duration"] * 15)


def test_a_long_nested_document_with_animators_filters_and_overlays_renders(
    api: Api, media: Origin, tmp_path: Path
) -> None:
    definition = (FIXTURES / "nested.xml").read_text()
    definition = definition.replace("http://example.com/music.mp3", f"{media.url}/audio_formats/file_type/fixture.mp3")
    definition = definition.replace(
        "http://example.com/logo.png", f"{media.url}/images_exif/pillow/exif_imagemagick_orientation.png"
    )
    definition = __import__("re").sub(
        r"http://example.com/photos/\d+.jpg", f"{media.url}/{PHOTOS}/Nikon_D70.jpg", definition
    )
    status = create(api, definition, profile="mobile-small")
    assert status["status"] == "success", status.get("error")
    assert status["result"]["duration"] == pytest.approx(20.0)
    seen = probe(status["result"]["export"], tmp_path)
    assert seen["frames"] == 20 * 15 and seen["audio"]


def test_segments_read_inputs_in_place_on_the_tasks_node_and_copy_them_in_chunks_elsewhere(
    dragon: DragonProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ray

    from dragon.movie import segments

    monkeypatch.setattr(segments, "CHUNK_BYTES", 1024**2)
    data = os.urandom(3 * 1024**2 + 12345)  # three whole chunks and a part
    (tmp_path / "input.bin").write_bytes(data)
    (tmp_path / "empty.bin").write_bytes(b"")
    ray.init(address=dragon.ray_address, logging_level=logging.ERROR, log_to_driver=False)
    try:
        inputs = segments.Inputs.here({"a": tmp_path / "input.bin"})
        assert inputs.localised(tmp_path / "unused") == {"a": tmp_path / "input.bin"}  # same node: the task's own file
        for name in ("input.bin", "empty.bin"):  # what a segment on another node does, from the task's node
            segments.copy_from_node(inputs.node, str(tmp_path / name), tmp_path / f"copy-{name}")
            assert (tmp_path / f"copy-{name}").read_bytes() == (tmp_path / name).read_bytes()
    finally:
        ray.shutdown()


class _HelperThatDies:
    """A stand-in for a pool member whose process dies two frame reports into a segment."""

    def segment(self, *args: Any) -> Any:
        yield 5
        yield 10
        os._exit(1)


def test_a_segment_whose_pool_member_dies_is_rendered_again_by_a_plain_task(
    dragon: DragonProcess, tmp_path: Path
) -> None:
    import ray

    from dragon.movie import segments
    from dragon.movie.render import Job, lengths
    from dragon.sxml import parse

    job = Job(THREE_COLOURS, "mobile-small", 1, lengths(parse(THREE_COLOURS), {}))
    ray.init(address=dragon.ray_address, logging_level=logging.ERROR, log_to_driver=False)
    try:
        helper = ray.remote(num_cpus=0, max_restarts=0)(_HelperThatDies).remote()
        seen: list[int] = []
        paths = segments.render_segments(
            job,
            segments.Inputs.here({}),
            [(0, 60), (60, 120), (120, 180)],
            tmp_path,
            tmp_path,
            seen.append,
            helpers=[helper],
            helper_slots=1,
        )
    finally:
        ray.shutdown()
    for path in paths:
        with av.open(str(path)) as container:
            assert sum(1 for _ in container.decode(video=0)) == 60
    assert seen == sorted(seen) and seen[-1] == 180  # the dead member's frames were not counted twice
