"""The soundtrack mixed chunk by chunk (dragon.movie.mixer) and encoded as it comes:
the same samples whatever the chunk size, a silent movie without a sound track."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from dragon.movie import mixer
from dragon.movie.encode import Output, encode_sound
from dragon.movie.render import Job, Movie
from dragon.sxml.profiles import profile


def tone(path: Path, seconds: float, freq: float, level: float = 0.5, rate: int = 22050) -> Path:
    t = np.arange(int(seconds * rate)) / rate
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.sin(2 * np.pi * freq * t) * level * 32767).astype("<i2").tobytes())
    return path


def movie(body: str, files: dict[str, Path], lengths: dict[str, float]) -> Movie:
    definition = f'<movie service="craftsman-1.0"><body>{body}</body></movie>'
    return Movie(Job(definition, "mobile-small", 1, lengths), files)


def mixed(m: Movie, chunk: int) -> np.ndarray:
    return np.concatenate(list(mixer.mix(m.document.movie, m.duration, m.files, chunk=chunk)), axis=1)


@pytest.fixture
def busy(tmp_path: Path) -> Movie:
    """Every kind of track state a chunk boundary can cut: a sped-up loop, a slowed
    track, a skip, fades, a transition's cross-fade and a ducking master."""
    files = {
        "a": tone(tmp_path / "a.wav", 1.3, 300),
        "b": tone(tmp_path / "b.wav", 4, 500),
        "v": tone(tmp_path / "v.wav", 2, 800),
    }
    body = (
        '<stack><effect type="none" duration="6"><image color="#000000"/></effect>'
        '<audio filename="a" duration=".." loop="true" speed="1.7" fadein="1"/>'
        '<audio filename="v" margin-start="2" duck-others="0.2" duck-fade="0.3"/></stack>'
        '<transition type="crossfade" duration="1"/>'
        '<stack><effect type="none" duration="4"><image color="#000000"/></effect>'
        '<audio filename="b" skip="0.5" speed="0.8" fadeout="1"/></stack>'
    )
    return movie(body, files, {"a": 1.3, "b": 4.0, "v": 2.0})


def test_the_soundtrack_is_the_same_in_small_chunks_as_in_one(busy: Movie) -> None:
    whole = mixed(busy, 10**7)
    assert whole.shape == (2, round(busy.duration * mixer.RATE)) and np.abs(whole).max() > 0.3
    for chunk in (4410, 12345):
        assert np.allclose(mixed(busy, chunk), whole, atol=1e-6), chunk


def test_chunks_have_the_chunk_size_but_the_last(busy: Movie) -> None:
    sizes = [piece.shape[1] for piece in mixer.mix(busy.document.movie, busy.duration, busy.files, chunk=44100)]
    assert set(sizes[:-1]) == {44100} and 0 < sizes[-1] <= 44100 and sum(sizes) == round(busy.duration * mixer.RATE)


def test_a_looped_track_repeats_its_source_for_as_long_as_it_plays(tmp_path: Path) -> None:
    files = {"a": tone(tmp_path / "a.wav", 1.0, 300)}
    m = movie(
        '<stack><effect type="none" duration="3.5"><image color="#000000"/></effect>'
        '<audio filename="a" duration=".." loop="true"/></stack>',
        files,
        {"a": 1.0},
    )
    sound = mixed(m, 10000)
    second = mixer.RATE
    assert np.allclose(sound[:, 2 * second + 100 : 2 * second + 2000], sound[:, 100:2000], atol=1e-3)
    assert np.sqrt(np.mean(sound[0, 3 * second :] ** 2)) > 0.3  # still playing in its fourth round


def test_a_silent_movie_has_no_sound_track(tmp_path: Path) -> None:
    chunks = (np.zeros((2, 1000), np.float32) for _ in range(5))
    assert encode_sound(chunks, tmp_path / "sound.nut", Output.export(profile("360p"))) is None
    assert not (tmp_path / "sound.nut").exists()


def test_leading_silence_is_kept_before_the_first_sound(tmp_path: Path) -> None:
    import av

    chunks = [np.zeros((2, mixer.RATE), np.float32), np.full((2, mixer.RATE), 0.2, np.float32)]
    out = encode_sound(iter(chunks), tmp_path / "sound.nut", Output.export(profile("360p")))
    assert out is not None
    with av.open(str(out)) as container:
        decoded = np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)
    assert abs(decoded.shape[1] - 2 * mixer.RATE) < 2048
    assert np.abs(decoded[:, : mixer.RATE - 2048]).max() < 0.01 and np.abs(decoded[:, -mixer.RATE // 2 :]).mean() > 0.1
