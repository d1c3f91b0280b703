"""Audio helpers on PyAV: probing, conversion and a streaming peak envelope.

Inputs are opened locked down (:mod:`dragon.media.containers`); a cover picture
(attached_pic stream) is not a video and is ignored. Nothing here holds a whole decoded
file in memory: decoding, encoding and the waveform are single streaming passes.
"""

from __future__ import annotations

import itertools
import math
import wave
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import numpy as np
from PIL import Image

from dragon.errors import InvalidContentError
from dragon.media import Source, lame
from dragon.media.containers import MAX_DURATION, open_input, reason
from dragon.media.containers import duration as media_duration
from dragon.media.threads import read_ahead

DEMUXERS = (
    "mp3",
    "aac",
    "flac",
    "ogg",
    "wav",
    "w64",
    "aiff",
    "ape",
    "amr",
    "ac3",
    "eac3",
    "asf",
    "mov",
    "mp4",
    "m4a",
    "3gp",
    "matroska",
    "webm",
    "mpc",
    "mpc8",
    "dsf",
    "wv",
    "au",
    "caf",
    "tta",
    "flv",
    "avi",
    "mpegts",
    "mpeg",
    "voc",
    "gsm",
    "mlp",
    "truehd",
    "dts",
)

CONTENT_TYPES = {
    "mp3": "audio/mpeg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "wav": "audio/wav",
    "w64": "audio/x-w64",
    "aiff": "audio/aiff",
    "ape": "audio/x-ape",
    "amr": "audio/amr",
    "ac3": "audio/ac3",
    "eac3": "audio/eac3",
    "asf": "audio/x-ms-wma",
    "mov": "audio/mp4",
    "matroska": "audio/x-matroska",
    "mpc": "audio/x-musepack",
    "mpc8": "audio/x-musepack",
    "dsf": "audio/x-dsf",
    "wv": "audio/x-wavpack",
    "au": "audio/basic",
    "caf": "audio/x-caf",
    "tta": "audio/x-tta",
    "flv": "video/x-flv",
    "avi": "video/x-msvideo",
    "mpegts": "video/mp2t",
    "mpeg": "audio/mpeg",
}

# codec -> (encoder, muxer, extension, content type, bit rate)
TARGETS = {
    "mp3": ("libmp3lame", "mp3", "mp3", "audio/mpeg", 192_000),
    "vorbis": ("vorbis", "ogg", "ogg", "audio/ogg", 160_000),  # FFmpeg's own encoder: stereo only
    "aac": ("aac", "mp4", "m4a", "audio/mp4", 160_000),
}
BATCH = 65536  # samples resampled and encoded per call
RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)


@dataclass(frozen=True)
class Probe:
    duration: float
    content_type: str
    codec: str
    sample_rate: int
    channels: int

    def values(self) -> dict:
        """The spec's audio.info output values."""
        return {"duration": round(self.duration, 2), "content_type": self.content_type, "codec": self.codec}


def open_audio(source: Source) -> av.container.InputContainer:
    return open_input(source, DEMUXERS, "audio file", "audio")


def probe(source: Source) -> Probe:
    """Container facts plus one decoded frame, so a file nothing can be decoded from fails."""
    with open_audio(source) as container:
        stream = container.streams.audio[0]
        duration = media_duration(container, stream)
        if not 0 <= duration <= MAX_DURATION:
            raise InvalidContentError(f"the declared duration ({duration:.0f} s) is beyond the limit")
        if next(_frames(container, stream), None) is None:
            raise InvalidContentError("no audio can be decoded from the file")
        demuxer = container.format.name.split(",")[0]
        content_type = CONTENT_TYPES.get(demuxer, "application/octet-stream")
        if demuxer == "matroska" and stream.codec_context.codec.canonical_name in ("opus", "vorbis"):
            content_type = "audio/webm"
        return Probe(
            duration=duration,
            content_type=content_type,
            codec=stream.codec_context.codec.canonical_name,
            sample_rate=stream.codec_context.sample_rate,
            channels=stream.codec_context.channels,
        )


def convert(source: Path, dest: Path, codec: str, force: bool, progress: Callable[[float], None]) -> str:
    """Encode to ``codec`` in its usual container; returns the content type.

    Without ``force``, an input already in that codec and container is remuxed (its
    packets copied, no quality lost); ``force`` always re-encodes. MP3 goes through the
    system's LAME where it is installed (:mod:`dragon.media.lame` says why).
    """
    encoder, muxer, _, content_type, bit_rate = TARGETS[codec]
    with open_audio(source) as inp:
        stream = inp.streams.audio[0]
        same = stream.codec_context.codec.canonical_name == codec and inp.format.name.split(",")[0] in (muxer, "mov")
        rate = stream.codec_context.sample_rate if stream.codec_context.sample_rate in RATES else 44100
        layout = "mono" if stream.codec_context.channels == 1 and codec != "vorbis" else "stereo"
        if codec == "mp3" and lame.available() and (force or not same):
            pcm = _resampled(inp, stream, av.AudioResampler(format="fltp", layout=layout, rate=rate), progress)
            lame.encode(pcm, dest, rate, 1 if layout == "mono" else 2, bit_rate)
            return content_type
        out = av.open(str(dest), "w", format=muxer, options={"movflags": "+faststart"} if muxer == "mp4" else {})
        try:
            if same and not force:
                copy = out.add_stream_from_template(stream)
                for packet in inp.demux(stream):
                    if packet.dts is not None:
                        packet.stream = copy
                        out.mux(packet)
            else:
                target = cast(av.AudioStream, out.add_stream(encoder, rate=rate))
                target.bit_rate = bit_rate
                target.layout = layout
                if codec == "vorbis":
                    target.codec_context.options = {"strict": "experimental"}
                resampler = av.AudioResampler(format=target.codec_context.format, layout=layout, rate=rate)
                for chunk in _resampled(inp, stream, resampler, progress):
                    out.mux(target.encode(chunk))
                out.mux(target.encode(None))
        finally:
            out.close()
    return content_type


def _resampled(
    inp: av.container.InputContainer,
    stream: av.audio.stream.AudioStream,
    resampler: av.AudioResampler,
    progress: Callable[[float], None],
) -> Iterator[av.AudioFrame]:
    """The stream decoded and resampled, in batches (fewer trips through Python), with
    timestamps in samples (Ogg writes them as granule positions); ``progress`` hears
    the fraction decoded every 5 s of audio."""
    duration = media_duration(inp, stream) or 1.0
    rate = resampler.rate
    fifo = av.AudioFifo()
    reported, written = 0.0, 0
    for frame in itertools.chain(_frames(inp, stream), [None]):  # None flushes
        if frame is not None:
            at = frame.time
            frame.pts = None  # the resampler and fifo keep their own count
            fifo.write(frame)
            if fifo.samples < BATCH:
                continue
            if at is not None and at - reported >= 5.0:
                reported = at
                progress(min(1.0, at / duration))
        pending = [fifo.read()] if fifo.samples else []
        for chunk in [c for batch in pending for c in resampler.resample(batch)] + (
            resampler.resample(None) if frame is None else []
        ):
            chunk.pts, chunk.time_base = written, Fraction(1, rate)
            written += chunk.samples
            yield chunk


def peaks(source: Source, columns: int, start: float, end: float | None) -> tuple[np.ndarray, float]:
    """Peak amplitude (0..1, all channels) per column over [start, end), in one pass;
    and the file's duration. Decoding runs a batch ahead in a thread while numpy folds
    the previous batch into the columns, so memory is two batches."""
    with open_audio(source) as container:
        stream = container.streams.audio[0]
        duration = media_duration(container, stream)
        stop = min(end, duration) if end is not None and duration else (end or duration)
        if not stop or stop <= start:
            raise InvalidContentError("nothing to draw between start and end")
        if start > 0:
            container.seek(int(start / stream.time_base), stream=stream, backward=True)
        bins = Columns(columns, start, stop)
        for first, rate, block in read_ahead(_batches(container, stream, stop)):
            bins.add(first, rate, block)
        return bins.peaks.clip(0, 1), duration


class Columns:
    """Peaks per column of [start, stop): a column takes the samples whose time ``t``
    has ``floor((t - start) / (stop - start) * columns)`` as its index. Work is per
    batch in sample indices (column edges found by arithmetic, maxima by
    ``reduceat``), not per sample in Python or in float64 times."""

    def __init__(self, columns: int, start: float, stop: float):
        self.columns, self.start, self.span = columns, start, stop - start
        self.peaks = np.zeros(columns, dtype=np.float32)

    def add(self, first: float, rate: int, block: np.ndarray) -> None:
        """``block``: planar samples (channels x n) from -1 to 1, the first at time ``first``."""
        n = block.shape[1]
        lo = min(n, max(0, math.ceil((self.start - first) * rate)))
        hi = min(n, max(0, math.ceil((self.start + self.span - first) * rate)))
        if lo >= hi:
            return
        c0, c1 = (int(self._columns(np.array([k]), first, rate)[0]) for k in (lo, hi - 1))
        inner = np.arange(c0 + 1, c1 + 1)
        edges = np.ceil((self.start + inner * self.span / self.columns - first) * rate).astype(np.int64)
        # Rounding may put an edge one sample off: settle it by the samples' own columns.
        edges -= self._columns(edges - 1, first, rate) >= inner
        edges += self._columns(edges, first, rate) < inner
        bounds = np.concatenate(([lo], edges.clip(lo, hi), [hi]))
        filled = bounds[1:] > bounds[:-1]  # narrower columns than a sample get none
        cuts = bounds[:-1][filled] - lo
        part = block[:, lo:hi]
        top = np.maximum.reduceat(part, cuts, axis=1).max(axis=0)
        bottom = np.minimum.reduceat(part, cuts, axis=1).min(axis=0)
        index = np.arange(c0, c1 + 1)[filled]
        self.peaks[index] = np.maximum(self.peaks[index], np.maximum(top, -bottom))

    def _columns(self, samples: np.ndarray, first: float, rate: int) -> np.ndarray:
        """The column of each sample index, by the definition above."""
        times = first + samples / rate
        return np.floor((times - self.start) / self.span * self.columns).astype(np.int64).clip(0, self.columns - 1)


def _batches(
    container: av.container.InputContainer, stream: av.audio.stream.AudioStream, stop: float
) -> Iterator[tuple[float, int, np.ndarray]]:
    """(time of the first sample, rate, planar float32 samples) of about BATCH samples
    each, from the current position until ``stop``; frames are taken as contiguous."""
    fifo = av.AudioFifo()
    origin: float | None = None
    consumed = 0
    for frame in itertools.chain(_frames(container, stream), [None]):
        done = frame is None or (frame.time is not None and frame.time >= stop)
        if frame is not None and not done:
            if frame.time is None:
                continue
            if origin is None:
                origin = frame.time
            frame.pts = None
            fifo.write(frame)
            if fifo.samples < BATCH:
                continue
        if fifo.samples and origin is not None:
            batch = fifo.read()
            yield origin + consumed / batch.sample_rate, batch.sample_rate, _planar_float(batch)
            consumed += batch.samples
        if done:
            return


def write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    """``samples`` (float, -1 to 1) as a 16-bit mono WAV file: the format every reader
    takes, espeak-ng's output and madmom's input alike."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())


def mono(path: Path, rate: int, limit: float = MAX_DURATION) -> Iterator[np.ndarray]:
    """The first audio stream as float32 mono blocks at ``rate`` Hz, at most ``limit``
    seconds of it: the input to analyses that keep per-frame features, never the signal."""
    with open_audio(path) as container:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        fifo = av.AudioFifo()
        left = int(limit * rate)
        for frame in itertools.chain(_frames(container, stream), [None]):  # None flushes
            if frame is not None:
                frame.pts = None
                fifo.write(frame)
                if fifo.samples < BATCH:
                    continue
            batches = [fifo.read()] if fifo.samples else []
            chunks = [c for batch in batches for c in resampler.resample(batch)]
            chunks += resampler.resample(None) if frame is None else []
            for chunk in chunks:
                block = chunk.to_ndarray().reshape(-1)[:left]
                left -= block.size
                if block.size:
                    yield block
                if left <= 0:
                    return


def _planar_float(frame: av.AudioFrame) -> np.ndarray:
    """Samples as float32 in -1..1, one row per channel."""
    data = frame.to_ndarray()
    kind = frame.format.name.rstrip("p")
    if kind == "s16":
        data = data.astype(np.float32) / 32768
    elif kind == "s32":
        data = data.astype(np.float32) / 2147483648
    elif kind == "u8":
        data = (data.astype(np.float32) - 128) / 128
    elif kind == "dbl":
        data = data.astype(np.float32)
    if not frame.format.is_planar:
        data = data.reshape(-1, len(frame.layout.channels)).T
    return data


def _frames(container: av.container.InputContainer, stream: av.audio.stream.AudioStream) -> Iterator[av.AudioFrame]:
    try:
        for packet in container.demux(stream):
            try:
                yield from packet.decode()
            except av.FFmpegError:
                continue  # a damaged packet: skip it, as players do
    except (av.FFmpegError, EOFError) as exc:
        if not isinstance(exc, EOFError):
            raise InvalidContentError(f"the audio could not be decoded ({reason(exc)})") from None


def waveform_image(levels: np.ndarray, height: int, vmargin: int, fill: str, background: str) -> Image.Image:
    """A bar per column, centred, as tall as the column's peak (minus the margins)."""
    width = levels.size
    image = np.empty((height, width, 4), dtype=np.uint8)
    image[:] = _rgba(background)
    half = max(0.0, (height - 2 * vmargin) / 2)
    middle = height / 2
    rows = np.arange(height)[:, None] + 0.5
    reach = np.maximum(levels * half, 0.5 if half else 0.0)[None, :]  # silence still draws a hairline
    image[np.abs(rows - middle) <= reach] = _rgba(fill)
    return Image.fromarray(image, "RGBA")


def _rgba(colour: str) -> tuple[int, int, int, int]:
    digits = colour.lstrip("#")
    values = [int(digits[i : i + 2], 16) for i in range(0, len(digits), 2)]
    return (*values[:3], values[3] if len(values) == 4 else 255)  # type: ignore[return-value]
