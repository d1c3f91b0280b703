"""examples/: each movie renders from local files through the API, as README.md shows
(make_media.py makes the inputs, render.py uploads them and runs video.create)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import av
import httpx
import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT, DragonProcess

EXAMPLES = ROOT / "examples"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The examples and freshly made sample media, outside the repository."""
    folder = tmp_path_factory.mktemp("examples")
    for definition in EXAMPLES.glob("*.xml"):
        shutil.copy(definition, folder)
    subprocess.run(
        [sys.executable, str(EXAMPLES / "make_media.py"), "--into", str(folder / "media")],
        check=True,
        capture_output=True,
        timeout=120,
    )
    return folder


def render(dragon: DragonProcess, account: dict, workdir: Path, name: str) -> dict[str, Any]:
    env = {**dragon.env, "DRAGON_URL": dragon.url, "DRAGON_SECRET": account["secret"]}
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "render.py"), f"{name}.xml"],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def watched(movie: Path) -> dict[str, Any]:
    """What a player sees: frames decoded, picture size, whether there is sound."""
    with av.open(str(movie)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(stream))
        duration = container.duration
        assert duration is not None
        return {
            "frames": frames,
            "size": (stream.width, stream.height),
            "audio": bool(container.streams.audio),
            "duration": duration / 1_000_000,
        }


def test_the_slideshow_has_its_title_photos_transitions_and_music(
    dragon: DragonProcess, account: dict, workdir: Path
) -> None:
    result = render(dragon, account, workdir, "slideshow")
    assert result["duration"] == pytest.approx(12.0)  # 3 + 3 x 4 s, less three 1 s transitions
    seen = watched(workdir / result["movie"])
    assert seen["size"] == (640, 360) and seen["frames"] == 12 * 25 and seen["audio"]
    title = np.asarray(Image.open(io.BytesIO(httpx.get(result["thumbnail"], timeout=60).content)).convert("L"))
    assert title.mean() < 60 and title.max() > 200  # the title card at 1 s: white letters on #1a1a1a


def test_the_video_edit_joins_two_cuts_of_a_clip_with_its_sound(
    dragon: DragonProcess, account: dict, workdir: Path
) -> None:
    result = render(dragon, account, workdir, "video-edit")
    assert result["duration"] == pytest.approx(3 + (6 - 2) / 2 - 0.5)  # 3 s, then 4 s at double speed, a 0.5 s wipe
    seen = watched(workdir / result["movie"])
    assert seen["frames"] == round(result["duration"] * 25) and seen["audio"]


def test_the_speech_example_lasts_as_long_as_its_voice(dragon: DragonProcess, account: dict, workdir: Path) -> None:
    result = render(dragon, account, workdir, "speech")
    assert 3.0 < result["duration"] < 10.0  # about 4 s of speech and a second after it
    assert watched(workdir / result["movie"])["audio"]
