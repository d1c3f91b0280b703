"""Writing rendered frames in a profile's format: video segments (each starts with a
keyframe and uses the same settings), the soundtrack alone, and their join into the
profile's container, packet by packet, so that nothing is encoded twice.

Segments and the soundtrack travel as NUT files: NUT holds every codec FFmpeg has with
exact timestamps, which MP4 (no Sorenson or WMV) and Matroska (milliseconds) do not.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import numpy as np

from dragon.media.video.codecs import Encoding, even_size, h264_stream
from dragon.movie.mixer import RATE
from dragon.sxml.profiles import PREVIEW, Format, Profile

TRANSIT = "nut"  # the container of segments and soundtracks between workers
PREVIEW_PRESET = "ultrafast"


@dataclass(frozen=True)
class Output:
    """What a render writes: the format, the stored frame size and the shape of its
    pixels (frames are drawn at the displayed size, square pixels, and scaled to the
    stored size when they differ), the frame rate and the bitrates in kbit/s."""

    format: Format
    width: int
    height: int
    rate: Fraction
    video_bitrate: int
    audio_bitrate: int
    pixel_aspect: Fraction = Fraction(1)
    preset: str | None = None  # libx264's, where the default is not wanted

    @classmethod
    def export(cls, profile: Profile) -> Output:
        return cls(
            profile.format,
            profile.width,
            profile.height,
            profile.fps,
            profile.video_bitrate,
            profile.audio_bitrate,
            profile.pixel_aspect,
        )

    @classmethod
    def preview(cls, profile: Profile) -> Output:
        """Half the displayed size, square pixels, as fast as H.264 encodes, in FLV."""
        width, height = cls.export(profile).display_size
        return cls(
            PREVIEW, width, height, profile.fps, profile.video_bitrate, profile.audio_bitrate, preset=PREVIEW_PRESET
        ).scaled(0.5)

    def scaled(self, factor: float) -> Output:
        """The same output ``factor`` times larger (even sizes)."""
        width, height = even_size(round(self.width * factor), round(self.height * factor))
        return dataclasses.replace(self, width=width, height=height)

    @property
    def display_size(self) -> tuple[int, int]:
        return even_size(round(self.width * self.pixel_aspect), self.height)

    @property
    def gop(self) -> int:
        """Frames between keyframes: 2 seconds, or the format's limit."""
        frames = int(2 * self.rate)
        return min(frames, self.format.max_gop) if self.format.max_gop else frames


class SegmentWriter:
    """Frames in (RGB at the displayed size), one video segment out."""

    def __init__(self, dest: Path, output: Output, *, threads: int = 0):
        self.out = av.open(str(dest), "w", format=TRANSIT)
        self.output = output
        self.stream = _video_stream(self.out, output)
        if threads:  # a segment worker owns one core: the parallelism is across segments
            self.stream.codec_context.thread_count = threads
        self.count = 0

    def write(self, rgb: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        if (frame.width, frame.height) != (self.output.width, self.output.height):
            frame = frame.reformat(width=self.output.width, height=self.output.height)
        frame.pts = self.count
        frame.time_base = 1 / self.output.rate
        self.count += 1
        self.out.mux(self.stream.encode(frame))

    def close(self) -> None:
        self.out.mux(self.stream.encode(None))
        self.out.close()

    def __enter__(self) -> SegmentWriter:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        if kind is None:
            self.close()
        else:
            self.out.close()


def _video_stream(out: av.container.OutputContainer, output: Output) -> av.VideoStream:
    fmt = output.format
    if fmt.video == "h264":
        enc = Encoding(
            width=output.width, height=output.height, crop=False, gop=output.gop, video_bitrate=output.video_bitrate
        )
        stream = h264_stream(out, enc, output.rate)
        if output.preset and stream.codec_context.name == "libx264":
            stream.codec_context.options = {**stream.codec_context.options, "preset": output.preset}
    else:
        stream = cast(av.VideoStream, out.add_stream(fmt.video, rate=output.rate))
        stream.width, stream.height, stream.pix_fmt = output.width, output.height, "yuv420p"
        stream.gop_size = output.gop
        stream.bit_rate = output.video_bitrate * 1000
        stream.codec_context.options = dict(fmt.video_options)
    if output.pixel_aspect != 1:
        stream.codec_context.sample_aspect_ratio = output.pixel_aspect
    return stream


def encode_sound(chunks: Iterable[np.ndarray], dest: Path, output: Output) -> Path | None:
    """The soundtrack (``chunks``: (2, n) float32 at the mixer's rate, in order) encoded
    alone in the output's audio codec, so that it can be encoded while the pictures
    render and then joined to them like the video segments. None when every sample is
    silent: the movie then has no sound track. Holds one chunk at a time."""
    silent = 0  # samples of silence not yet written
    out: av.container.OutputContainer | None = None
    try:
        for chunk in chunks:
            if out is None and not np.any(chunk):
                silent += chunk.shape[1]
                continue
            if out is None:
                out = av.open(str(dest), "w", format=TRANSIT)
                stream = cast(av.AudioStream, out.add_stream(output.format.audio, rate=output.format.audio_rate))
                stream.layout = "stereo"
                stream.bit_rate = output.audio_bitrate * 1000
                written = 0
                for at in range(0, silent, RATE):  # the silence before the first sound, a second at a time
                    written = _encode(out, stream, np.zeros((2, min(RATE, silent - at)), np.float32), written)
            written = _encode(out, stream, chunk, written)
        if out is None:
            return None
        out.mux(stream.encode(None))
    finally:
        if out is not None:
            out.close()
    return dest


def _encode(out: av.container.OutputContainer, stream: av.AudioStream, samples: np.ndarray, at: int) -> int:
    """``samples`` encoded from sample ``at``; returns where the next ones start. The
    encoder cuts frames to its codec's size and resamples to its rate."""
    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples), format="fltp", layout="stereo")
    frame.sample_rate = RATE
    frame.pts = at
    frame.time_base = Fraction(1, RATE)
    out.mux(stream.encode(frame))
    return at + samples.shape[1]


def join(segments: list[Path], sound: Path | None, dest: Path, fmt: Format) -> None:
    """The segments' video packets end to end (timestamps shifted, nothing re-encoded),
    interleaved in time with the encoded soundtrack's, in ``fmt``'s container."""
    with av.open(str(dest), "w", format=fmt.muxer, options=dict(fmt.muxer_options)) as out:
        with av.open(str(segments[0])) as first:
            vout = out.add_stream_from_template(first.streams.video[0])
        audio_in = av.open(str(sound)) if sound is not None else None
        try:
            aout = out.add_stream_from_template(audio_in.streams.audio[0]) if audio_in is not None else None
            audio = _Interleaved(
                out, aout, audio_in.demux(audio_in.streams.audio[0]) if audio_in is not None else iter(())
            )
            offset = 0.0  # seconds of video already joined
            for path in segments:
                with av.open(str(path)) as part:
                    offset = _append(out, vout, part, offset, audio)
            audio.flush()
        finally:
            if audio_in is not None:
                audio_in.close()


def _append(
    out: av.container.OutputContainer,
    vout: av.VideoStream,
    part: av.container.InputContainer,
    offset: float,
    audio: _Interleaved,
) -> float:
    """One segment's packets, shifted so that its first frame shows at ``offset``
    seconds; returns where it ends. Encoders with a delay start their timestamps late:
    the shift takes the segment's first packet, its opening keyframe, which shows
    first, as its start."""
    vin = part.streams.video[0]
    time_base = Fraction(vin.time_base or 1)
    shift: int | None = None
    end = offset
    for packet, pts, dts in _decode_times(part, vin):
        if shift is None:
            shift = round(offset / time_base) - pts
        packet.pts, packet.dts = pts + shift, dts + shift
        end = max(end, float((pts + shift + (packet.duration or 0)) * time_base))
        audio.until(float((dts + shift) * time_base))
        packet.stream = vout
        out.mux(packet)
    return end


def _decode_times(part: av.container.InputContainer, vin: av.VideoStream) -> Iterator[tuple[av.Packet, int, int]]:
    """The segment's packets with their presentation and decoding times. NUT keeps no
    decoding time for the packets that precede the first one a B-frame delay makes
    known: each comes its duration before the next."""
    waiting: list[av.Packet] = []
    for packet in part.demux(vin):
        if not packet.size:
            continue
        if packet.dts is None:
            waiting.append(packet)
            continue
        earlier, times = packet.dts, []
        for early in reversed(waiting):
            earlier -= early.duration or packet.duration or 1
            times.append(earlier)
        for early, dts in zip(waiting, reversed(times)):
            yield early, early.pts if early.pts is not None else dts, dts
        waiting.clear()
        yield packet, packet.pts if packet.pts is not None else packet.dts, packet.dts
    for packet in waiting:  # a segment too short to learn its delay: shown in order
        yield packet, packet.pts or 0, packet.pts or 0


class _Interleaved:
    """The soundtrack's packets, muxed as the video reaches their time."""

    def __init__(self, out: av.container.OutputContainer, stream: av.AudioStream | None, packets: Iterator[av.Packet]):
        self.out, self.stream, self.packets = out, stream, packets
        self.pending = next(packets, None) if stream is not None else None

    def until(self, seconds: float) -> None:
        while self.pending is not None and (
            self.pending.dts is None or float(self.pending.dts * self.pending.time_base) <= seconds
        ):
            self._mux()

    def flush(self) -> None:
        while self.pending is not None:
            self._mux()

    def _mux(self) -> None:
        packet = self.pending
        if packet is not None and packet.size:
            packet.stream = self.stream
            self.out.mux(packet)
        self.pending = next(self.packets, None)
