"""Writing rendered frames: H.264 segments (NVENC on a GPU worker, libx264 otherwise)
and joining them, with the soundtrack, into one MP4 without re-encoding the video."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from dragon.media.video.codecs import Encoding, h264_stream
from dragon.movie.mixer import RATE

AUDIO_FRAME = 1024  # samples per AAC frame


class SegmentWriter:
    """Frames in, an H.264 MP4 out (``video_bitrate``, bits per second, caps the rate). Every segment starts with a keyframe and uses the
    same settings, so segments can be joined packet by packet."""

    def __init__(self, dest: Path, width: int, height: int, rate: Fraction, video_bitrate: int, preset: str | None = None,
                 threads: int = 0):
        self.out = av.open(str(dest), "w", format="mp4")
        enc = Encoding(width=width, height=height, crop=False, gop=int(2 * rate), video_bitrate=video_bitrate // 1000)
        self.stream = h264_stream(self.out, enc, rate)
        if preset and self.stream.codec_context.name == "libx264":
            self.stream.codec_context.options = {**self.stream.codec_context.options, "preset": preset}
        if threads:  # a segment worker owns one core: the parallelism is across segments
            self.stream.codec_context.thread_count = threads
        self.rate = rate
        self.count = 0

    def write(self, rgb: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
        frame.pts = self.count
        frame.time_base = 1 / self.rate
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


def encode_sound(sound: np.ndarray, dest: Path, bitrate: int) -> Path:
    """The soundtrack (``bitrate`` in bits per second) alone as AAC in MP4, so that it can be encoded while the pictures
    render and then joined to them like the video segments."""
    with av.open(str(dest), "w", format="mp4") as out:
        stream = out.add_stream("aac", rate=RATE)
        stream.layout = "stereo"
        stream.bit_rate = bitrate
        for at in range(0, sound.shape[1], AUDIO_FRAME):
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(sound[:, at : at + AUDIO_FRAME]), format="fltp", layout="stereo")
            frame.sample_rate = RATE
            frame.pts = at
            frame.time_base = Fraction(1, RATE)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return dest


def join(segments: list[Path], sound: Path | None, dest: Path) -> None:
    """Concatenate the segments' video packets (timestamps shifted, nothing re-encoded)
    with the encoded soundtrack, interleaved in time, index first (``+faststart``)."""
    with av.open(str(dest), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        with av.open(str(segments[0])) as first:
            vout = out.add_stream_from_template(first.streams.video[0])
        audio_in = av.open(str(sound)) if sound is not None else None
        try:
            aout = out.add_stream_from_template(audio_in.streams.audio[0]) if audio_in is not None else None
            audio_packets = audio_in.demux(audio_in.streams.audio[0]) if audio_in is not None else iter(())
            pending = next(audio_packets, None)
            offset = 0  # in the video stream's time base
            for path in segments:
                with av.open(str(path)) as part:
                    vin = part.streams.video[0]
                    scale = vin.time_base / vout.time_base
                    end = offset
                    for packet in part.demux(vin):
                        if packet.size == 0:
                            continue
                        for name in ("pts", "dts"):
                            value = getattr(packet, name)
                            if value is not None:
                                setattr(packet, name, int(value * scale) + offset)
                        end = max(end, (packet.pts or 0) + int((packet.duration or 0) * scale))
                        seconds = float((packet.dts if packet.dts is not None else end) * vout.time_base)
                        while pending is not None and aout is not None and (pending.dts is None or float(pending.dts * pending.time_base) <= seconds):
                            pending = _mux_audio(out, aout, pending, audio_packets)
                        packet.stream = vout
                        out.mux(packet)
                    offset = end
            while pending is not None and aout is not None:
                pending = _mux_audio(out, aout, pending, audio_packets)
        finally:
            if audio_in is not None:
                audio_in.close()


def _mux_audio(out: av.container.OutputContainer, aout: av.AudioStream, packet: av.Packet, rest: Iterator[av.Packet]) -> av.Packet | None:
    if packet.size:
        packet.stream = aout
        out.mux(packet)
    return next(rest, None)
