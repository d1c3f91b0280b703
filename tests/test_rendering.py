"""The SXML renderer, frame by frame and sample by sample (dragon.movie, no Ray):
what each effect, transition, text, overlay, filter and animator puts on screen, and
how the soundtrack is mixed."""

from __future__ import annotations

import wave
from pathlib import Path

import av
import numpy as np
import pytest

from dragon.movie import mixer
from dragon.movie.effects import EFFECT_TYPES
from dragon.movie.render import Job, Movie, split
from dragon.movie.transitions import TRANSITION_TYPES
from tests.conftest import MEDIA
from tests.support.supersampling import Supersampled, psnr

PHOTO = MEDIA / "images_exif" / "exif_samples" / "Canon_40D.jpg"
RED, BLUE, GREEN, BLACK = "#ff0000", "#0000ff", "#00ff00", "#000000"


def movie(
    body: str,
    files: dict[str, Path] | None = None,
    lengths: dict[str, float] | None = None,
    profile: str = "quicktime-small",
    antialias: int = 1,
) -> Movie:
    definition = f'<movie service="craftsman-1.0"><body>{body}</body></movie>'
    return Movie(Job(definition, profile, antialias, lengths or {}), files or {})


def plate(colour: str, seconds: float = 2.0) -> str:
    return f'<effect type="none" duration="{seconds}"><image color="{colour}"/></effect>'


def at(m: Movie, seconds: float) -> np.ndarray:
    return m.picture(round(seconds * float(m.rate))).astype(int)


def segment(m: Movie, first: int, stop: int, dest: Path) -> Path:
    """Frames [first, stop) rendered to ``dest``."""
    for _ in m.render(first, stop, dest):
        pass
    return dest


def soundtrack(m: Movie) -> np.ndarray:
    """The whole soundtrack at once (short test movies only)."""
    return np.concatenate(list(m.soundtrack()), axis=1)


def test_a_crossfade_midpoint_is_a_blend_of_both_sides() -> None:
    m = movie(plate(RED, 3) + '<transition type="crossfade" duration="2"/>' + plate(BLUE, 3))
    assert m.duration == pytest.approx(4.0)
    assert at(m, 0.5)[120, 160].tolist() == [255, 0, 0]
    assert at(m, 2.0)[120, 160] == pytest.approx([128, 0, 128], abs=2)
    assert at(m, 3.5)[120, 160].tolist() == [0, 0, 255]


@pytest.mark.parametrize("kind", TRANSITION_TYPES)
def test_every_transition_type_shows_something_of_both_sides_in_its_middle(kind: str) -> None:
    m = movie(plate(RED, 3) + f'<transition type="{kind}" duration="2"/>' + plate(BLUE, 3), profile="mobile-small")
    middle = at(m, 2.0)
    assert (middle[..., 0] > 100).mean() > 0.05, "nothing of the outgoing side"
    assert (middle[..., 2] > 100).mean() > 0.05, "nothing of the incoming side"
    assert at(m, 0.5)[72, 88].tolist() == [255, 0, 0] and at(m, 3.5)[72, 88].tolist() == [0, 0, 255]


def test_kenburns_zooms_in_and_a_negative_direction_plays_it_backwards() -> None:
    files = {"photo": PHOTO}
    forward = movie('<effect type="kenburns" duration="4"><image filename="photo"/></effect>', files)
    backward = movie(
        '<effect type="kenburns" direction="negative" duration="4"><image filename="photo"/></effect>', files
    )
    first, last = forward.picture(0).astype(int), forward.picture(forward.frames - 1).astype(int)
    assert np.abs(first - last).mean() > 10, "the picture did not move"
    assert np.abs(backward.picture(0).astype(int) - last).mean() < 2
    # Zooming in: the detail of the centre grows, so the last frame is smoother at the edges of the view.
    assert np.abs(np.diff(last, axis=1)).mean() < np.abs(np.diff(first, axis=1)).mean()


@pytest.mark.parametrize("kind", EFFECT_TYPES)
def test_every_effect_type_draws_its_media_and_changes_over_time(kind: str) -> None:
    m = movie(
        f'<effect type="{kind}" duration="3"><image filename="photo"/><image filename="photo"/></effect>'
        if kind in ("diving", "rotator", "sliding", "square")
        else f'<effect type="{kind}" duration="3"><image filename="photo"/></effect>',
        {"photo": PHOTO},
        profile="mobile-small",
    )
    frames = [m.picture(i).astype(int) for i in (2, m.frames // 2, m.frames - 3)]
    assert frames[1].mean() > 20, "the picture is not drawn"
    if kind != "none":
        assert max(np.abs(a - b).mean() for a, b in zip(frames, frames[1:])) > 1


def test_a_zone_text_puts_its_ink_inside_its_placement() -> None:
    m = movie(
        f'<stack>{plate(BLACK)}<text type="zone" top="0" left="0" width="0.5" height="0.25" fontcolor="#ffffff">Hello</text></stack>'
    )
    frame = at(m, 1.0).sum(axis=2)
    h, w = frame.shape
    assert frame[: h // 4, : w // 2].max() > 600, "no ink in the box"
    assert frame[h // 4 + 2 :, :].max() == 0 and frame[:, w // 2 + 2 :].max() == 0, "ink outside the box"


def test_an_overlay_is_stretched_to_its_box_and_fit_adapter_keeps_the_aspect(tmp_path: Path) -> None:
    wide = tmp_path / "wide.png"
    from PIL import Image

    Image.new("RGB", (200, 100), (0, 255, 0)).save(wide)
    box = 'left="0.5" top="0.5" width="0.25" height="0.25"'
    stretched = at(movie(f'<stack>{plate(RED)}<overlay {box}><image filename="w"/></overlay></stack>', {"w": wide}), 1)
    green = stretched[..., 1] > 200
    ys, xs = np.nonzero(green)
    assert (xs.min(), xs.max() + 1, ys.min(), ys.max() + 1) == (160, 240, 120, 180)
    fitted = at(
        movie(
            f'<stack>{plate(RED)}<overlay {box}><image filename="w"><filter type="fitAdapter"/></image></overlay></stack>',
            {"w": wide},
        ),
        1,
    )
    ys, xs = np.nonzero(fitted[..., 1] > 200)
    assert (xs.max() + 1 - xs.min()) / (ys.max() + 1 - ys.min()) == pytest.approx(2.0, rel=0.05)
    assert xs.min() >= 160 and xs.max() < 240 and ys.min() >= 120 and ys.max() < 180


def test_later_children_of_a_stack_are_drawn_on_top() -> None:
    top = at(movie(f"<stack>{plate(RED)}{plate(BLUE)}</stack>"), 1)
    assert top[120, 160].tolist() == [0, 0, 255]


def test_filters_change_the_picture_as_documented() -> None:
    negative = at(
        movie(
            '<stack><effect type="none" duration="2"><image color="#ff0000"><filter type="colormap" preset="negative"/></image></effect></stack>'
        ),
        1,
    )
    assert negative[120, 160].tolist() == [0, 255, 255]
    grey = at(movie('<effect type="none" duration="2"><image color="#ff0000"/><filter type="colormap"/></effect>'), 1)
    assert grey[120, 160, 0] == grey[120, 160, 1] == grey[120, 160, 2]
    fade = movie(
        '<effect type="none" duration="2"><image color="#ffffff"/><filter type="alpha" alphaStart="0" alphaEnd="1"/></effect>'
    )
    assert at(fade, 0)[120, 160, 0] < 10 and at(fade, 1.0)[120, 160, 0] == pytest.approx(128, abs=4)
    framed = at(
        movie(
            '<effect type="none" duration="2"><image color="#000000"/><filter type="frame" width="10" color="#00ff00"/></effect>'
        ),
        1,
    )
    assert framed[2, 160].tolist() == [0, 255, 0] and framed[120, 160].tolist() == [0, 0, 0]


def test_a_slide_in_animator_brings_a_text_in_from_the_side() -> None:
    m = movie(
        f'<stack>{plate(BLACK, 3)}<text type="zone" width="0.4" height="0.3" fontcolor="#ffffff">Hi'
        '<animator type="slide-in" direction="left" duration="2"/></text></stack>'
    )

    def centre_of_ink(seconds: float) -> float:
        xs = np.nonzero(at(m, seconds).sum(axis=(0, 2)) > 0)[0]
        return float(xs.mean()) if xs.size else float("inf")

    assert centre_of_ink(1.0) > centre_of_ink(2.5) and centre_of_ink(2.5) == pytest.approx(160, abs=20)


def test_a_video_inside_an_effect_plays_at_its_speed_from_its_skip() -> None:
    clip = MEDIA / "video" / "js_ffmpeg" / "video-640-360.mp4"
    files, lengths = {"v": clip}, {"v": 5.0}
    plain = movie('<effect type="none"><video filename="v" skip="1"/></effect>', files, {"v": 10.0})
    fast = movie('<effect type="none"><video filename="v" speed="2"/></effect>', files, {"v": 10.0})
    assert plain.duration == pytest.approx(9.0) and fast.duration == pytest.approx(5.0)
    assert np.abs(plain.picture(0).astype(int) - fast.picture(round(0.5 * 25)).astype(int)).mean() < 6
    assert lengths


def test_segments_join_into_one_movie_without_re_encoding(tmp_path: Path) -> None:
    m = movie(plate(RED, 2) + plate(GREEN, 2) + plate(BLUE, 2))
    parts = [segment(m, a, b, tmp_path / f"part-{i}.nut") for i, (a, b) in enumerate(split(m.frames, 3))]
    out = m.finish(parts, tmp_path / "movie.mp4")
    with av.open(str(out)) as container:
        frames = [f.to_ndarray(format="rgb24")[120, 160].astype(int) for f in container.decode(video=0)]
        assert container.streams.video[0].codec_context.name == "h264"
    assert len(frames) == m.frames == 150
    assert [int(np.argmax(frames[i])) for i in (10, 60, 140)] == [0, 1, 2]


def tone(path: Path, seconds: float, freq: float = 440.0, level: float = 0.5, rate: int = 44100) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    samples = (np.sin(2 * np.pi * freq * t) * level * 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


def loudness(sound: np.ndarray, start: float, end: float) -> float:
    part = sound[0, int(start * mixer.RATE) : int(end * mixer.RATE)]
    return float(np.sqrt(np.mean(part**2)))


def test_audio_fades_in_and_out_over_the_given_seconds(tmp_path: Path) -> None:
    files = {"a": tone(tmp_path / "a.wav", 10)}
    m = movie(
        f'<stack>{plate(BLACK, 6)}<audio filename="a" duration=".." fadein="2" fadeout="2"/></stack>',
        files,
        {"a": 10.0},
    )
    sound = soundtrack(m)
    assert sound.shape[1] == pytest.approx(6 * mixer.RATE, abs=2)
    full = loudness(sound, 2.5, 3.5)
    assert full == pytest.approx(0.5 / np.sqrt(2), rel=0.05)
    assert loudness(sound, 0, 0.2) < 0.1 * full and loudness(sound, 5.8, 6.0) < 0.1 * full
    assert loudness(sound, 0.9, 1.1) == pytest.approx(full / 2, rel=0.15)


def test_margins_leave_silence_around_an_audio(tmp_path: Path) -> None:
    files = {"a": tone(tmp_path / "a.wav", 30)}
    m = movie(f'<stack>{plate(BLACK, 15)}<audio filename="a" margin-both="2" fadeout="2"/></stack>', files, {"a": 30.0})
    sound = soundtrack(m)
    assert loudness(sound, 0, 1.9) == 0 and loudness(sound, 13.1, 15) == 0 and loudness(sound, 3, 10) > 0.3


def test_a_ducking_master_lowers_the_other_tracks_while_it_sounds(tmp_path: Path) -> None:
    files = {"music": tone(tmp_path / "music.wav", 12, 220), "voice": tone(tmp_path / "voice.wav", 3, 880)}
    m = movie(
        f'<stack>{plate(BLACK, 12)}<audio filename="music" duration=".."/>'
        '<audio filename="voice" margin-start="4" duck-others="0.2" duck-margin="0.5" duck-fade="0.5"/></stack>',
        files,
        {"music": 12.0, "voice": 3.0},
    )
    movie_sound = soundtrack(m)
    music_only = np.concatenate(list(mixer.mix(m.document.movie, m.duration, {"music": files["music"]})), axis=1)
    alone, ducked = loudness(music_only, 1, 2), loudness(movie_sound, 5, 6)
    assert loudness(movie_sound, 1, 2) == pytest.approx(alone, rel=0.02), "ducked before the voice"
    # During the voice: the voice plus the music at 20%.
    voice_alone = 0.5 / np.sqrt(2)
    assert np.sqrt(max(ducked**2 - voice_alone**2, 0)) < 0.35 * alone
    assert loudness(movie_sound, 10, 11) == pytest.approx(alone, rel=0.02), "not restored after the voice"


def test_transitions_crossfade_the_sound_of_both_sides(tmp_path: Path) -> None:
    files = {"a": tone(tmp_path / "a.wav", 10, 300), "b": tone(tmp_path / "b.wav", 10, 600)}
    body = (
        f'<stack>{plate(RED, 4)}<audio filename="a" duration=".."/></stack><transition type="crossfade" duration="2"/>'
        f'<stack>{plate(BLUE, 4)}<audio filename="b" duration=".."/></stack>'
    )
    sound = soundtrack(movie(body, files, {"a": 10.0, "b": 10.0}))
    steady = loudness(sound, 0.5, 1.5)
    assert loudness(sound, 2.0, 2.1) == pytest.approx(steady, rel=0.05)  # a at full, b silent
    assert loudness(sound, 3.95, 4.05) < steady  # both half way: partly cancelled, never louder
    assert loudness(sound, 5.9, 6.0) == pytest.approx(steady, rel=0.05)


def ink_box(frame: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(frame.sum(axis=2) > 60)
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def test_custom_animator_keys_move_and_scale_a_node_between_them() -> None:
    overlay = (
        '<overlay left="0.4" top="0.4" width="0.2" height="0.2"><image color="#ffffff"/>'
        '<animator type="custom" duration="2"><key time="0" pos="0,0,0" scale="1,1,1"/>'
        '<key time="2" pos="0.5,0.5,0" scale="2,2,1"/></animator></overlay>'
    )
    m = movie(f"<stack>{plate(BLACK, 3)}{overlay}</stack>")
    x0, y0, x1, y1 = ink_box(at(m, 0))
    assert (x1 - x0, y1 - y0) == pytest.approx((64, 48), abs=2)
    x0, y0, x1, y1 = ink_box(at(m, 2.5))  # after the last key: its pose holds
    assert (x1 - x0, y1 - y0) == pytest.approx((128, 96), abs=3)
    # pos is in screen units with y up: half a unit right and up is 60 pixels on a 240-line frame.
    assert ((x0 + x1) / 2, (y0 + y1) / 2) == pytest.approx((160 + 60, 120 - 60), abs=3)


def test_grow_brings_a_node_closer_and_rot_in_turns_it_into_place() -> None:
    box = '<overlay left="0.4" top="0.4" width="0.2" height="0.2"><image color="#ffffff"/>{}</overlay>'
    growing = box.format('<animator type="grow" growStart="0" growEnd="0.5"/>')
    grow = movie(f"<stack>{plate(BLACK, 2)}{growing}</stack>")
    assert ink_box(at(grow, 1.9))[2] - ink_box(at(grow, 1.9))[0] > 1.8 * (
        ink_box(at(grow, 0))[2] - ink_box(at(grow, 0))[0]
    )
    turning = box.format('<animator type="rot-in" angle="45" duration="1"/>')
    turn = movie(f"<stack>{plate(BLACK, 2)}{turning}</stack>")
    assert ink_box(at(turn, 1.5)) == pytest.approx((128, 96, 191, 143), abs=2)  # in place once turned in
    assert at(turn, 0.5).sum() < at(turn, 1.5).sum()


def test_a_camera_moving_right_shifts_the_whole_stack_left() -> None:
    still = '<overlay left="0.4" top="0.4" width="0.2" height="0.2"><image color="#ffffff"/></overlay>'
    camera = (
        '<camera><animator type="custom"><key time="0" pos="0,0,0"/><key time="2" pos="0.5,0,0"/></animator></camera>'
    )
    m = movie(f"<stack>{plate(BLACK, 2)}{still}{camera}</stack>")
    assert ink_box(at(m, 0))[0] == pytest.approx(128, abs=2)
    assert ink_box(at(m, 1.96))[0] == pytest.approx(128 - 59, abs=3)


def test_the_export_keeps_to_the_profiles_bitrates(tmp_path: Path) -> None:
    files = {"a": tone(tmp_path / "a.wav", 6, 500)}
    m = movie(
        '<stack><effect type="kenburns" duration="6"><image filename="p"/></effect><audio filename="a" duration=".."/></stack>',
        {**files, "p": PHOTO},
        {"a": 6.0},
        profile="quicktime-small",
    )
    out = m.finish([segment(m, 0, m.frames, tmp_path / "v.nut")], tmp_path / "movie.mp4")
    with av.open(str(out)) as container:
        video_rate, audio_rate = container.streams.video[0].bit_rate, container.streams.audio[0].bit_rate
        assert video_rate is not None and audio_rate is not None
        video_kbps, audio_kbps = video_rate / 1000, audio_rate / 1000
    assert video_kbps <= 256 * 1.2 and 40 <= audio_kbps <= 64 * 1.1  # quicktime-small: 256k / 64k


def test_a_recoloured_overlay_keeps_its_opacity_over_what_is_beneath() -> None:
    overlay = (
        '<overlay left="0.5" top="0.5" width="0.25" height="0.25"><image color="#0000ff">'
        '<filter type="colormap" preset="negative"/></image></overlay>'
    )
    frame = at(movie(f"<stack>{plate(RED)}{overlay}</stack>"), 1)
    assert frame[150, 200].tolist() == [255, 255, 0] and frame[20, 20].tolist() == [255, 0, 0]


# -- antialiasing: filtered sampling at the output size against 4x supersampling ------------

DETAILED = MEDIA / "images_exif" / "exif_samples" / "gps_DSCN0010.jpg"  # foliage: fine detail everywhere
LOGO = MEDIA / "images_exif" / "pillow" / "exif_imagemagick_orientation.png"  # hard black and white edges
CLIP = MEDIA / "video" / "js_ffmpeg" / "video-640-360.mp4"
PICTURE = '<effect type="none" duration="3"><image filename="photo"/></effect>'
BOX = 'left="0.3" top="0.3" width="0.4" height="0.4"'


def scenes() -> dict[str, str]:
    """The renderer's scenes: every effect, every transition, texts, moved layers, a camera, a video."""
    found = {
        f"effect-{kind}": f'<effect type="{kind}" duration="3"><image filename="photo"/><image filename="logo"/></effect>'
        if kind in ("diving", "rotator", "sliding", "square")
        else f'<effect type="{kind}" duration="3"><image filename="photo"/></effect>'
        for kind in EFFECT_TYPES
    }
    found |= {
        f"transition-{kind}": PICTURE
        + f'<transition type="{kind}" duration="2"/>'
        + '<effect type="kenburns" duration="3"><image filename="logo"/></effect>'
        for kind in TRANSITION_TYPES
    }
    found |= {
        "texts": (
            f'<stack>{PICTURE}<text type="zone" top="0.05" height="0.3">Summer 2026 in the mountains</text>'
            '<text type="legend">A caption under it</text>'
            '<text type="advanced" fontsize="18" align="left,top" reference="Reference">Advanced</text></stack>'
        ),
        "rot-in": f'<stack>{PICTURE}<overlay {BOX}><image filename="logo"/><animator type="rot-in" angle="30" duration="3"/></overlay></stack>',
        "grow": f'<stack>{PICTURE}<overlay {BOX}><image filename="logo"/><animator type="grow" growStart="-2" growEnd="0.5" duration="3"/></overlay></stack>',
        "slide-in": (
            f'<stack>{PICTURE}<text type="zone" width="0.5" height="0.3">Sliding'
            '<animator type="slide-in" direction="left" duration="3"/></text></stack>'
        ),
        "camera": (
            f'<stack>{PICTURE}<overlay {BOX}><image filename="logo"/></overlay><camera><animator type="custom" duration="3">'
            '<key time="0" pos="0,0,0"/><key time="3" pos="0.3,0.1,0.2" rot="20,0,0,1"/></animator></camera></stack>'
        ),
        "overlay-fit": f'<stack>{PICTURE}<overlay {BOX}><image filename="logo"><filter type="fitAdapter"/></image></overlay></stack>',
        "video": '<effect type="kenburns"><video filename="clip" duration="3"/></effect>',
    }
    return found


@pytest.mark.parametrize("name", sorted(scenes()))
def test_antialias_4_matches_4x_supersampling_without_drawing_4x_the_pixels(name: str) -> None:
    files, lengths = {"photo": DETAILED, "logo": LOGO, "clip": CLIP}, {"clip": 5.0}
    m = movie(scenes()[name], files, lengths, antialias=4)
    reference = Supersampled(m.job, files)
    try:
        assert (m.canvas.width, m.canvas.height) == (m.width, m.height) == (320, 240)  # drawn at the output size
        scores = [psnr(m.picture(i), reference.picture(i)) for i in (round(m.frames * f) for f in (0.2, 0.5, 0.8))]
    finally:
        m.close()
        reference.close()
    print(
        f"{name}: PSNR against 4x supersampling {min(scores):.1f} dB (frames: {', '.join(f'{s:.1f}' for s in scores)})"
    )
    assert min(scores) >= 40, scores
