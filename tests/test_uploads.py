"""video.upload.youtube, video.upload.fb, video.upload.vimeo and the youtube store,
through the HTTP API, against local servers that follow each platform's protocol."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from typing import Any

import av
import numpy as np
import pytest

from tests.conftest import Api
from tests.support.platforms import DEVELOPER_KEY, FB_APP_SECRET, V2_CONSUMER, V2_TOKEN_SECRET, Platforms
from tests.support.servers import Origin


@pytest.fixture(scope="module")
def clip(origin: Origin) -> tuple[str, bytes]:
    """A 2-second 320x240 H.264 clip of noise (about 1 MB: four chunks and more)."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        rng = np.random.default_rng(5)
        for _ in range(50):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    data = buffer.getvalue()
    return origin.add("upload-me.mp4", data), data


@pytest.fixture()
def fakes(platforms: Platforms) -> Iterator[Platforms]:
    platforms.reset()
    yield platforms


def token(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex}"


def youtube(url: str, access_token: str) -> dict[str, Any]:
    return {
        "task_name": "video.upload.youtube",
        "url": url,
        "access_token": access_token,
        "developer_key": DEVELOPER_KEY,
        "title": "Dragon test",
        "description": "uploaded by the tests",
        "tags": ["a", "b"],
        "privacy_status": "unlisted",
    }


def facebook(url: str, access_token: str) -> dict[str, Any]:
    return {
        "task_name": "video.upload.fb",
        "url": url,
        "access_token": access_token,
        "title": "On Facebook",
        "description": "d",
        "privacy": "SELF",
        "no_story": True,
        "app_secret": FB_APP_SECRET,
    }


def vimeo(url: str, access_token: str) -> dict[str, Any]:
    return {
        "task_name": "video.upload.vimeo",
        "url": url,
        "oauth2_token": access_token,
        "title": "On Vimeo",
        "description": "v3",
    }


def vimeo_v2(url: str, access_token: str) -> dict[str, Any]:
    return {
        "task_name": "video.upload.vimeo",
        "url": url,
        "title": "Old API",
        "description": "v2",
        "consumer_key": V2_CONSUMER[0],
        "consumer_secret": V2_CONSUMER[1],
        "access_token_key": access_token,
        "access_token_secret": V2_TOKEN_SECRET,
    }


TARGETS = {
    "youtube": (youtube, "https://www.youtube.com/watch?v=yt-video-1"),
    "facebook": (facebook, "https://www.facebook.com/watch/?v=fb-video-1"),
    "vimeo": (vimeo, "https://vimeo.com/424242"),
    "vimeo-v2": (vimeo_v2, "https://vimeo.com/777"),
}


@pytest.mark.parametrize("platform", TARGETS)
@pytest.mark.parametrize("kind", ["good", "flaky"])
def test_uploads_arrive_whole_even_after_a_dropped_chunk(
    api: Api, fakes: Platforms, clip, platform: str, kind: str
) -> None:
    url, data = clip
    definition, output = TARGETS[platform]
    result = api.result(definition(url, token(kind)))
    assert result["output"] == output
    assert result["duration"] == pytest.approx(2.0, abs=0.05)
    assert bytes(fakes.uploads[platform]) == data
    assert fakes.drops.get(platform, 0) == (1 if kind == "flaky" else 0)
    if platform.startswith("vimeo"):
        assert result["uploaded_file_size"] == len(data)
        assert 0 < result["free_space"] <= 50 * 1024**2 - (len(data) if platform == "vimeo" else 0)


def test_metadata_reaches_each_platform(api: Api, fakes: Platforms, clip) -> None:
    url, _ = clip
    for definition, _ in TARGETS.values():
        api.result(definition(url, token("good")))
    snippet = fakes.metadata["youtube"]["snippet"]
    assert (snippet["title"], snippet["tags"], snippet["categoryId"]) == ("Dragon test", ["a", "b"], "22")
    assert fakes.metadata["youtube"]["status"] == {"privacyStatus": "unlisted"}
    fb = fakes.metadata["facebook"]
    assert (fb["title"], fb["privacy"], fb["no_story"], fb["signed"]) == (
        "On Facebook",
        {"value": "SELF"},
        "true",
        True,
    )
    assert fakes.metadata["vimeo"] == {"name": "On Vimeo", "description": "v3"}
    assert fakes.metadata["vimeo-v2"] == {
        "filename": fakes.metadata["vimeo-v2"]["filename"],
        "title": "Old API",
        "description": "v2",
    }


@pytest.mark.parametrize("platform", TARGETS)
@pytest.mark.parametrize("kind, error", [("expired", "AuthorizationError"), ("noquota", "QuotaExceededError")])
def test_platform_refusals_carry_its_message_and_no_secret(
    api: Api, fakes: Platforms, clip, platform: str, kind: str, error: str
) -> None:
    url, _ = clip
    secret = token(kind)
    definition, _ = TARGETS[platform]
    status = api.run(definition(url, secret))
    assert status["status"] == "error"
    assert status["error"].startswith(f"{error}: ")
    assert ("YouTube" if platform == "youtube" else "Facebook" if platform == "facebook" else "Vimeo") in status[
        "error"
    ]
    [details] = api.status([status["key"]], details="true")
    assert secret not in json.dumps(details) and secret not in json.dumps(status)
    assert platform not in fakes.uploads


def test_vimeo_needs_one_kind_of_credentials(api: Api, clip) -> None:
    url, _ = clip
    status = api.run({"task_name": "video.upload.vimeo", "url": url, "consumer_key": "only-this"})
    assert status["status"] == "error" and "parameters" in status["error"]


def test_a_file_that_is_not_a_video_is_not_uploaded(api: Api, fakes: Platforms, origin: Origin) -> None:
    status = api.run(youtube(origin.add("not-video.mp4", b"plain text"), token("good")))
    assert status["error"].startswith("InvalidContentError: ")
    assert "youtube" not in fakes.uploads


def test_the_youtube_store_publishes_a_task_output(api: Api, fakes: Platforms, clip) -> None:
    url, _ = clip
    store = {
        "type": "youtube",
        "access_token": token("good"),
        "developer_key": DEVELOPER_KEY,
        "title": "Converted",
        "tags": ["dragon"],
        "category_id": 10,
        "privacy_status": "private",
    }
    result = api.result({"task_name": "video.convert", "url": url, "width": 160, "task_store": store})
    assert result["output"] == "https://www.youtube.com/watch?v=yt-video-1"
    uploaded = bytes(fakes.uploads["youtube"])
    assert uploaded[4:8] == b"ftyp"
    assert fakes.metadata["youtube"]["snippet"]["categoryId"] == "10"
    assert fakes.metadata["youtube"]["status"] == {"privacyStatus": "private"}


def test_a_wrong_oauth1_signature_is_refused(api: Api, fakes: Platforms, clip) -> None:
    url, _ = clip
    status = api.run({**vimeo_v2(url, token("good")), "consumer_secret": "not-the-secret"})
    assert status["error"].startswith("AuthorizationError: Vimeo: Invalid signature")
