"""Opening audio files the locked-down way (dragon/media/containers.py) against PyAV's
plain open, which runs FFmpeg's full stream analysis. No Ray, no server."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from dragon.media import Source, audio, containers
from tests.conftest import MEDIA
from tests.support.sounds import write_wav

FILES = [
    "audio_formats/tinytag/8bit_pcm.wav",
    "audio_formats/tinytag/24bit_pcm.wav",
    "audio_formats/tinytag/32bit_float.wav",
    "audio_formats/tinytag/adpcm.wav",
    "audio_formats/tinytag/gsm_6_10.wav",
    "audio_formats/tinytag/test3sMono.wav",
    "audio_formats/file_type/fixture.wav",
    "audio_beats/guitarset/03_BN3-119-G_solo_mic.wav",
    "audio_formats/tinytag/vbr44.mp3",
    "audio_formats/file_type/fixture-adts-mpeg4-2.aac",
    "audio_formats/tinytag/flac1.5sStereo.flac",
    "audio_formats/file_type/fixture.m4a",
    "audio_formats/tinytag/test-tagged.aiff",
]


def _facts(container: av.container.InputContainer) -> tuple[Any, ...]:
    """What the audio tasks read of the first audio stream, and all of its samples."""
    stream = container.streams.audio[0]
    context = stream.codec_context
    samples = np.concatenate([f.to_ndarray().reshape(-1) for f in container.decode(stream)])
    return (
        container.format.name,
        context.name,
        context.sample_rate,
        context.channels,
        stream.duration,
        container.duration,
        samples.size,
        samples.tobytes(),
    )


@pytest.mark.parametrize("name", FILES)
def test_audio_opens_to_the_stream_and_samples_that_ffmpegs_full_analysis_finds(name: str) -> None:
    path = MEDIA / name
    with av.open(str(path)) as plain:
        expected = _facts(plain)
    source: Source
    for source in (path, io.BytesIO(path.read_bytes())):
        with audio.open_audio(source) as container:
            assert _facts(container) == expected


def test_a_wav_longer_than_ffmpegs_analysis_opens_to_its_whole_stream(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "long.wav", 12.0, 44100, 2)
    with av.open(str(path)) as plain, audio.open_audio(path) as container:
        assert _facts(container) == _facts(plain)
        assert container.duration == 12_000_000


@pytest.mark.parametrize(
    "codec, channels, metadata",
    [
        ("pcm_s16le", 1, {"comment": "x" * 30000}),  # a header chunk longer than the analysis reads
        ("pcm_s24le", 6, {}),  # WAVE_FORMAT_EXTENSIBLE
        ("adpcm_ms", 1, {}),
        ("libmp3lame", 2, {}),  # MP3 inside a WAV
    ],
)
def test_a_wav_opens_to_what_ffmpegs_full_analysis_finds_whatever_its_header_holds(
    tmp_path: Path, codec: str, channels: int, metadata: dict[str, str]
) -> None:
    path = write_wav(tmp_path / "clip.wav", 3.0, 44100, channels, codec, metadata)
    if metadata:
        assert path.read_bytes().index(b"data") > containers.WAV_PROBESIZE  # the samples start past it
    with av.open(str(path)) as plain, audio.open_audio(path) as container:
        assert _facts(container) == _facts(plain)
        assert dict(container.metadata) == dict(plain.metadata)
