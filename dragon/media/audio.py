"""Audio helpers on PyAV: probing, conversion and a streaming peak envelope.

Inputs are opened locked down (:mod:`dragon.media.containers`); a cover picture
(attached_pic stream) is not a video and is ignored. Nothing here holds a whole decoded
file in memory: decoding, encoding and the waveform are single streaming passes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator

import av
import numpy as np
from PIL import Image

from dragon.errors import InvalidContentError
from dragon.media.containers import MAX_DURATION, open_input, reason
from dragon.media.containers import duration as media_duration

DEMUXERS = (
    "mp3", "aac", "flac", "ogg", "wav", "w64", "aiff", "ape", "amr", "ac3", "eac3", "asf", "mov", "mp4",
    "m4a", "3gp", "matroska", "webm", "mpc", "mpc8", "dsf", "wv", "au", "caf", "tta", "flv", "avi", "mpegts",
    "mpeg", "voc", "gsm", "mlp", "truehd", "dts",
)

CONTENT_TYPES = {
    "mp3": "audio/mpeg", "aac": "audio/aac", "flac": "audio/flac", "ogg": "audio/ogg", "wav": "audio/wav",
    "w64": "audio/x-w64", "aiff": "audio/aiff", "ape": "audio/x-ape", "amr": "audio/amr", "ac3": "audio/ac3",
    "eac3": "audio/eac3", "asf": "audio/x-ms-wma", "mov": "audio/mp4", "matroska": "audio/x-matroska",
    "mpc": "audio/x-musepack", "mpc8": "audio/x-musepack", "dsf": "audio/x-dsf", "wv": "audio/x-wavpack",
    "au": "audio/basic", "caf": "audio/x-caf", "tta": "audio/x-tta", "flv": "video/x-flv",
    "avi": "video/x-msvideo", "mpegts": "video/mp2t", "mpeg": "audio/mpeg",
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


def open_audio(path: Path) -> av.container.InputContainer:
    return open_input(path, DEMUXERS, "audio file", "audio")


def probe(path: Path) -> Probe:
    """Container facts plus one decoded frame, so a file nothing can be decoded from fails."""
    with open_audio(path) as container:
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
    packets copied, no quality lost); ``force`` always re-encodes.
    """
    encoder, muxer, _, content_type, bit_rate = TARGETS[codec]
    with open_audio(source) as inp:
        stream = inp.streams.audio[0]
        duration = media_duration(inp, stream) or 1.0
        same = stream.codec_context.codec.canonical_name == codec and inp.format.name.split(",")[0] in (muxer, "mov")
        out = av.open(str(dest), "w", format=muxer, options={"movflags": "+faststart"} if muxer == "mp4" else {})
        try:
            if same and not force:
                copy = out.add_stream_from_template(stream)
                for packet in inp.demux(stream):
                    if packet.dts is not None:
                        packet.stream = copy
                        out.mux(packet)
            else:
                rate = stream.codec_context.sample_rate if stream.codec_context.sample_rate in RATES else 44100
                mono = stream.codec_context.channels == 1 and codec != "vorbis"
                layout = "mono" if mono else "stereo"
                target = out.add_stream(encoder, rate=rate)
                target.bit_rate = bit_rate
                target.layout = layout
                if codec == "vorbis":
                    target.codec_context.options = {"strict": "experimental"}
                resampler = av.AudioResampler(format=target.codec_context.format, layout=layout, rate=rate)
                reported, written = 0.0, 0
                fifo = av.AudioFifo()  # batches of decoded frames: fewer trips through Python
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
                        # Timestamps in samples: Ogg writes them as granule positions.
                        chunk.pts, chunk.time_base = written, Fraction(1, rate)
                        written += chunk.samples
                        out.mux(target.encode(chunk))
                out.mux(target.encode(None))
        finally:
            out.close()
    return content_type


def peaks(path: Path, columns: int, start: float, end: float | None) -> tuple[np.ndarray, float]:
    """Peak amplitude (0..1, all channels) per column over [start, end), in one pass;
    and the file's duration. Samples are binned by their time, so memory is one frame."""
    with open_audio(path) as container:
        stream = container.streams.audio[0]
        duration = media_duration(container, stream)
        stop = min(end, duration) if end is not None and duration else (end or duration)
        if not stop or stop <= start:
            raise InvalidContentError("nothing to draw between start and end")
        if start > 0:
            container.seek(int(start / stream.time_base), stream=stream, backward=True)
        out = np.zeros(columns, dtype=np.float32)
        fifo = av.AudioFifo()  # whole batches through numpy, not frame by frame
        origin: float | None = None  # time of the first sample in the fifo's stream
        consumed = 0
        for frame in itertools.chain(_frames(container, stream), [None]):
            done = frame is None or (frame.time is not None and frame.time >= stop)
            if not done:
                if frame.time is None:
                    continue
                if origin is None:
                    origin = frame.time
                frame.pts = None
                fifo.write(frame)
                if fifo.samples < BATCH:
                    continue
            if fifo.samples:
                batch = fifo.read()
                first = origin + consumed / batch.sample_rate  # type: ignore[operator]
                consumed += batch.samples
                _bin(out, _mono_peak(batch), first, batch.sample_rate, start, stop, columns)
            if done:
                break
        return out.clip(0, 1), duration


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


def _bin(out: np.ndarray, levels: np.ndarray, first: float, rate: int, start: float, stop: float, columns: int) -> None:
    """Fold per-sample levels starting at time ``first`` into the column maxima."""
    times = first + np.arange(levels.size) / rate
    keep = (times >= start) & (times < stop)
    if not keep.any():
        return
    index = ((times[keep] - start) / (stop - start) * columns).astype(np.int64).clip(0, columns - 1)
    levels = levels[keep]
    edges = np.flatnonzero(np.diff(index)) + 1  # index only grows: columns are runs
    starts = np.concatenate(([0], edges))
    np.maximum.at(out, index[starts], np.maximum.reduceat(levels, starts))


def _mono_peak(frame: av.AudioFrame) -> np.ndarray:
    """Largest absolute value across channels, as floats in -1..1."""
    data = frame.to_ndarray()
    kind = frame.format.name.rstrip("p")
    if kind in ("s16",):
        data = data.astype(np.float32) / 32768
    elif kind in ("s32",):
        data = data.astype(np.float32) / 2147483648
    elif kind in ("u8",):
        data = (data.astype(np.float32) - 128) / 128
    if not frame.format.is_planar:
        data = data.reshape(-1, len(frame.layout.channels)).T
    return np.abs(data).max(axis=0)


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
