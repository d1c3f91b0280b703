"""MP3 through the system's LAME against FFmpeg's own libmp3lame encoder, and the
waveform's column peaks against the per-sample definition. No Ray, no server."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from dragon.media import audio, lame
from dragon.media.threads import read_ahead
from tests.support.sounds import write_wav


def _decoded(path: Path) -> np.ndarray:
    with av.open(str(path)) as container:
        return np.concatenate([f.to_ndarray() for f in container.decode(audio=0)], axis=1)


def _ffmpeg_encoder(source: Path, dest: Path, rate: int, channels: int) -> None:
    """The reference: FFmpeg's libmp3lame encoder fed the same float samples."""
    layout = "stereo" if channels == 2 else "mono"
    with av.open(str(source)) as inp, av.open(str(dest), "w", format="mp3") as out:
        stream = out.add_stream("libmp3lame", rate=rate)
        stream.bit_rate, stream.layout = 192_000, layout
        stream.codec_context.format = "fltp"
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=rate)
        for frame in itertools.chain(inp.decode(audio=0), [None]):
            for chunk in resampler.resample(frame):
                out.mux(stream.encode(chunk))
        out.mux(stream.encode(None))


def test_the_system_lame_is_installed() -> None:
    assert lame.available(), "libmp3lame0 is missing: MP3 would fall back to the 3x slower encoder"


@pytest.mark.parametrize("rate, channels", [(44100, 2), (22050, 1)])
def test_mp3_decodes_to_the_same_samples_as_ffmpegs_encoder(tmp_path: Path, rate: int, channels: int) -> None:
    source = tmp_path / "source.wav"
    write_wav(source, 3.0, rate, channels)
    ours, reference = tmp_path / "ours.mp3", tmp_path / "reference.mp3"
    audio.convert(source, ours, "mp3", True, lambda done: None)
    _ffmpeg_encoder(source, reference, rate, channels)
    mine, theirs = _decoded(ours), _decoded(reference)
    # The Info header carries the encoder delay and padding: both trim to the input's length.
    assert mine.shape == theirs.shape == (channels, int(3.0 * rate))
    assert np.abs(mine - theirs).max() < 1e-6


def _peaks_by_definition(samples: np.ndarray, times: np.ndarray, columns: int, start: float, stop: float) -> np.ndarray:
    out = np.zeros(columns, dtype=np.float32)
    keep = (times >= start) & (times < stop)
    index = ((times[keep] - start) / (stop - start) * columns).astype(np.int64).clip(0, columns - 1)
    np.maximum.at(out, index, np.abs(samples[:, keep]).max(axis=0))
    return out


@pytest.mark.parametrize(
    "columns, start, stop, first, batch",
    [(100, 0.0, 2.0, 0.0, 4096), (1024, 0.3, 1.7, 0.0, 1000), (5000, 0.0, 0.05, 0.0, 333), (7, 0.5, 0.9, 0.45, 8192)],
)
def test_column_peaks_match_the_per_sample_definition(
    columns: int, start: float, stop: float, first: float, batch: int
) -> None:
    rate = 8000
    samples = np.random.default_rng(1).uniform(-1, 1, (2, int(2 * rate))).astype(np.float32)
    bins = audio.Columns(columns, start, stop)
    times = []
    for offset in range(0, samples.shape[1], batch):
        block = samples[:, offset : offset + batch]
        bins.add(first + offset / rate, rate, block)
        times.append(
            first + offset / rate + np.arange(block.shape[1]) / rate
        )  # each sample's time, as the batch gives it
    expected = _peaks_by_definition(samples, np.concatenate(times), columns, start, stop)
    np.testing.assert_array_equal(bins.peaks, expected)


def test_read_ahead_keeps_order_and_raises_the_producers_error() -> None:
    assert list(read_ahead(range(50))) == list(range(50))

    def failing() -> Iterator[int]:
        yield 1
        raise ValueError("broken input")

    with pytest.raises(ValueError, match="broken input"):
        list(read_ahead(failing()))


def test_leaving_read_ahead_early_stops_its_thread() -> None:
    produced: list[int] = []

    def endless():
        for i in itertools.count():
            produced.append(i)
            yield i

    for i in read_ahead(endless()):
        if i == 3:
            break
    count = len(produced)
    assert count <= 3 + 4  # the item taken, the queue's depth, one in hand
    assert len(produced) == count  # nothing more once the loop has left
