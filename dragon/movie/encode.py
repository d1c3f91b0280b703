"""Writing rendered frames: H.264 segments (NVENC on a GPU worker, libx264 otherwise)
and joining them, with the soundtrack, into one MP4 without re-encoding the video."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from dragon.media import video
from dragon.movie.mixer import RATE

AUDIO_FRAME = 1024  # samples per AAC frame


class SegmentWriter:
    """Frames in, an H.264 MP4 out. Every segment starts with a keyframe and uses the
    same settings, so segments can be joined packet by packet."""

    def __init__(self, dest: Path, width: int, height: int, rate: Fraction, video_bitrate: int, preset: str | None = None):
        self.out = av.open(str(dest), "w", format="mp4")
        enc = video.Encoding(width=width, height=height, crop=False, gop=int(2 * rate), video_bitrate=video_bitrate)
        self.stream = video.h264_stream(self.out, enc, rate)
        if preset and self.stream.codec_context.name == "libx264":
            self.stream.codec_context.options = {**self.stream.codec_context.options, "preset": preset}
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


def join(segments: list[Path], sound: np.ndarray | None, dest: Path, audio_bitrate: int) -> None:
    """Concatenate the segments' video packets (timestamps shifted, nothing re-encoded)
    and encode the soundtrack alongside, interleaved, index first (``+faststart``)."""
    with av.open(str(dest), "w", format="mp4", options={"movflags": "+faststart"}) as out:
        with av.open(str(segments[0])) as first:
            vout = out.add_stream_from_template(first.streams.video[0])
        aout = None
        if sound is not None:
            aout = out.add_stream("aac", rate=RATE)
            aout.layout = "stereo"
            aout.bit_rate = audio_bitrate * 1000
        audio_at = 0  # samples encoded so far
        offset = 0  # in the video stream's time base
        for path in segments:
            with av.open(str(path)) as part:
                vin = part.streams.video[0]
                scale = vin.time_base / vout.time_base
                end = offset
                for packet in part.demux(vin):
                    if packet.size == 0:
                        continue
                    if aout is not None and packet.pts is not None:
                        seconds = float((packet.pts * scale + offset) * vout.time_base)
                        audio_at = _audio_until(out, aout, sound, audio_at, seconds + 0.5)
                    for name in ("pts", "dts"):
                        value = getattr(packet, name)
                        if value is not None:
                            setattr(packet, name, int(value * scale) + offset)
                    end = max(end, (packet.pts or 0) + int((packet.duration or 0) * scale))
                    packet.stream = vout
                    out.mux(packet)
                offset = end
        if aout is not None:
            _audio_until(out, aout, sound, audio_at, float("inf"))
            out.mux(aout.encode(None))


def _audio_until(out: av.container.OutputContainer, aout: av.AudioStream, sound: np.ndarray, at: int, seconds: float) -> int:
    stop = min(sound.shape[1], int(seconds * RATE)) if seconds != float("inf") else sound.shape[1]
    while at < stop:
        chunk = np.ascontiguousarray(sound[:, at : at + AUDIO_FRAME])
        frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
        frame.sample_rate = RATE
        frame.pts = at
        frame.time_base = Fraction(1, RATE)
        out.mux(aout.encode(frame))
        at += chunk.shape[1]
    return at
