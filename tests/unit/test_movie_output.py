"""How rendered frames become files: box-filtered texture lookups, segments joined into
each profile's container with even timestamps, and progress over preview and export."""

from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import av
import pytest
import torch

from dragon.movie.canvas import Canvas, Texture, sample, scaling, translate
from dragon.movie.production import Production, RenderSettings
from dragon.movie.render import Job, Movie, split


def test_a_boxed_lookup_equals_four_supersampled_taps_at_two_texels_per_pixel() -> None:
    canvas = Canvas(40, 30, antialias=4)
    texture = Texture(torch.rand(4, 60, 80))  # 2 texels per pixel along both axes
    to_texture = scaling(1 / canvas.aspect, 1.0) @ translate(0.013, -0.021)  # the screen, a fraction of a pixel off
    boxed = texture.draw(canvas, to_texture, (0, 0, 40, 30))
    taps = sample(texture.pixels, canvas, to_texture, supersample=True)
    assert torch.allclose(boxed, taps, atol=1e-5)
    plain = texture.draw(Canvas(40, 30), to_texture, (0, 0, 40, 30))  # antialias 1: one tap
    assert not torch.allclose(plain, taps, atol=1e-2)


def plates(seconds: float) -> str:
    colours = ["#ff0000", "#00ff00", "#0000ff"]
    body = "".join(f'<effect type="none" duration="{seconds / 3}"><image color="{c}"/></effect>' for c in colours)
    return f'<movie service="craftsman-1.0"><body>{body}</body></movie>'


def _seconds(pts: int | None, time_base: Fraction | None) -> float:
    """A decoded frame's time: each frame these files hold has a pts, each stream a time base."""
    assert pts is not None and time_base is not None
    return float(pts * time_base)


@pytest.mark.parametrize(
    "profile, container, codec",
    [
        ("quicktime-small", "mp4", "h264"),
        ("flash-small", "flv", "flv"),
        ("wmv1", "asf", "wmv1"),
        ("dvd-pal-4-3-h", "mpeg", "mpeg2video"),
        ("dvd-mpeg1-small", "mpeg", "mpeg1video"),
        ("mobile-small", "mp4", "mpeg4"),
        ("flash-h264", "flv", "h264"),
    ],
)
def test_segments_join_frame_after_frame_in_every_container(
    tmp_path: Path, profile: str, container: str, codec: str
) -> None:
    m = Movie(Job(plates(1.2), profile, 1, {}), {})
    parts = []
    for i, (first, stop) in enumerate(split(m.frames, 3)):
        parts.append(tmp_path / f"part-{i}.nut")
        for _ in m.render(first, stop, parts[-1]):
            pass
    out = m.finish(parts, tmp_path / f"movie.{m.output.format.extension}")
    with av.open(str(out)) as file:
        stream = file.streams.video[0]
        assert container in file.format.name and stream.codec_context.name == codec
        times = [_seconds(frame.pts, stream.time_base) for frame in file.decode(stream)]
    assert len(times) == m.frames
    steps = {round(b - a, 3) for a, b in zip(times, times[1:])}
    assert steps == {round(1 / float(m.rate), 3)}, steps  # no gap, no overlap where segments meet


def test_progress_counts_preview_frames_by_their_pixels_and_ends_at_100(tmp_path: Path) -> None:
    seen: list[int] = []
    job = Job(plates(2), "mobile-small", 1, {})
    production = Production(
        job, {}, RenderSettings(scratch_root=tmp_path, segment_seconds=60), seen.append, preview=True, export=True
    )
    try:
        production.preview(tmp_path)
        assert production.percent == seen[-1] == math.floor(100 * 0.25 / 1.25)  # a quarter of the pixels
        production.export(tmp_path)
    finally:
        production.close()
    assert seen == sorted(seen) and len(set(seen)) == len(seen) and seen[-1] == 100
    assert len([p for p in seen if 0 < p < 20]) >= 3 and len([p for p in seen if 20 < p < 100]) >= 3
