"""Conversion and reversal: decode (NVDEC where :mod:`.codecs` allows), one filter
chain (upright, scale or crop, yuv420p) and one encoder set-up for both."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import av.filter

from dragon.errors import InvalidContentError
from dragon.media.containers import duration as media_duration
from dragon.media.video.codecs import Encoding, h264_stream
from dragon.media.video.frames import Decoder, decode_packet, open_video, rotation

AUDIO_ENCODERS = {"aac": "aac", "mp3": "libmp3lame", "mp2": "mp2", "wmav1": "wmav1", "wmav2": "wmav2"}


def convert(source: Path, dest: Path, enc: Encoding, progress: Callable[[float], None]) -> None:
    """Transcode to H.264 (+ audio), upright, scaled or cropped to ``enc``'s size.

    MP4 output has its index first (``+faststart``) so it plays while downloading.
    ``progress`` receives the fraction of the source done, about once a second of media.
    """
    with open_video(source) as inp:
        vstream = inp.streams.video[0]
        decoder = Decoder(inp, vstream)
        _transcode(inp, vstream, decoder, dest, enc, progress)


def _transcode(
    inp: av.container.InputContainer,
    vstream: av.video.stream.VideoStream,
    decoder: Decoder,
    dest: Path,
    enc: Encoding,
    progress: Callable[[float], None],
) -> None:
    with _Writer(dest, enc, inp) as writer:
        astream = inp.streams.audio[0] if inp.streams.audio and enc.audio_codec else None
        duration = media_duration(inp, vstream) or 1.0
        reported = 0.0
        for packet in inp.demux(*(s for s in (vstream, astream) if s is not None)):
            for frame in decoder.decode(packet) if packet.stream is vstream else decode_packet(packet):
                if packet.stream is vstream:
                    at = frame.time  # before the filter chain renumbers the frame
                    writer.video(frame)
                    if at is not None and at - reported >= 1.0:
                        reported = at
                        progress(min(1.0, at / duration))
                else:
                    writer.audio(frame)


def reverse(source: Path, dest: Path, enc: Encoding, progress: Callable[[float], None]) -> None:
    """The video track played backwards, one keyframe interval at a time: memory
    holds one interval of output-sized frames, never the whole video."""
    keyframes = _keyframes(source)
    with open_video(source) as inp:
        vstream = inp.streams.video[0]
        decoder = Decoder(inp, vstream)
        _reverse(inp, decoder, keyframes, dest, enc, progress)


def _reverse(
    inp: av.container.InputContainer,
    decoder: Decoder,
    keyframes: list[int],
    dest: Path,
    enc: Encoding,
    progress: Callable[[float], None],
) -> None:
    with _Writer(dest, dataclasses.replace(enc, audio_codec=None), inp) as writer:
        bounds = list(zip(keyframes, keyframes[1:] + [None]))
        for done, (start, end) in enumerate(reversed(bounds)):
            decoder.seek(start)
            segment = []
            for frame in decoder.frames():
                if frame.pts is None or frame.pts < start:
                    continue
                if end is not None and frame.pts >= end:
                    break
                segment.extend(writer.filtered(frame))
            for frame in reversed(segment):
                writer.encode(frame)
            progress((done + 1) / len(bounds))


def _keyframes(source: Path) -> list[int]:
    """Presentation times of the video's keyframes, read from packets without decoding."""
    with open_video(source) as inp:
        stream = inp.streams.video[0]
        found = sorted({p.pts for p in inp.demux(stream) if p.is_keyframe and p.pts is not None})
    if not found:
        raise InvalidContentError("the video has no keyframe")
    return found


class _Writer:
    """Output container, filter chain (rotation, scale or crop, pixel format) and encoders."""

    def __init__(self, dest: Path, enc: Encoding, inp: av.container.InputContainer):
        vstream = inp.streams.video[0]
        self.enc = enc
        self.rate = vstream.average_rate or vstream.guessed_rate or Fraction(25)
        muxer, _, _ = enc.container
        self.out = av.open(str(dest), "w", format=muxer, options={"movflags": "+faststart"} if muxer == "mp4" else {})
        self.video_out = h264_stream(self.out, enc, self.rate)
        self.time_base = vstream.time_base
        self.rotation = rotation(inp, vstream)
        self.graph: av.filter.Graph | None = None  # built from the first frame's format
        self.count = 0
        self.audio_out = None
        self.resampler = None
        if enc.audio_codec and inp.streams.audio:
            channels = min(2, inp.streams.audio[0].codec_context.channels or 2)
            layout = "stereo" if channels == 2 else "mono"
            self.audio_out = self.out.add_stream(AUDIO_ENCODERS[enc.audio_codec], rate=enc.sample_rate)
            self.audio_out.bit_rate = enc.audio_bitrate * 1000
            self.audio_out.layout = layout
            self.resampler = av.AudioResampler(
                format=self.audio_out.codec_context.format, layout=layout, rate=enc.sample_rate
            )

    def filtered(self, frame: av.VideoFrame) -> list[av.VideoFrame]:
        frame.pts = self.count  # the chain wants increasing times, whatever the order fed
        self.count += 1
        if self.graph is None:
            self.graph = _filters(frame, self.time_base, self.rotation, self.enc)
        self.graph.push(frame)
        return self._pull()

    def _pull(self) -> list[av.VideoFrame]:
        frames: list[av.VideoFrame] = []
        if self.graph is None:
            return frames
        while True:
            try:
                frames.append(self.graph.pull())
            except (av.BlockingIOError, av.EOFError):
                return frames

    def video(self, frame: av.VideoFrame) -> None:
        for out in self.filtered(frame):
            self.encode(out)

    def encode(self, frame: av.VideoFrame) -> None:
        frame.pts = self.encoded = getattr(self, "encoded", -1) + 1
        frame.time_base = 1 / self.rate
        self.out.mux(self.video_out.encode(frame))

    def audio(self, frame: av.AudioFrame) -> None:
        if self.resampler is None or self.audio_out is None:
            return
        frame.pts = None
        for resampled in self.resampler.resample(frame):
            self.out.mux(self.audio_out.encode(resampled))

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        try:
            if kind is None:
                if self.graph is not None:
                    self.graph.push(None)
                for frame in self._pull():
                    self.encode(frame)
                self.out.mux(self.video_out.encode(None))
                if self.audio_out is not None and self.resampler is not None:
                    for resampled in self.resampler.resample(None):
                        self.out.mux(self.audio_out.encode(resampled))
                    self.out.mux(self.audio_out.encode(None))
        finally:
            self.out.close()


def _filters(first: av.VideoFrame, time_base: Fraction, degrees: float, enc: Encoding) -> av.filter.Graph:
    """buffer → upright (transpose/flip) → scale (cover, then crop) → yuv420p → sink.
    The buffer takes the decoder's frames as they come (yuv420p on the CPU, nv12 from NVDEC)."""
    graph = av.filter.Graph()
    chain = [graph.add_buffer(width=first.width, height=first.height, format=first.format.name, time_base=time_base)]
    turn = round(degrees) % 360
    if turn == 90:
        chain.append(graph.add("transpose", "cclock"))
    elif turn == 270:
        chain.append(graph.add("transpose", "clock"))
    elif turn == 180:
        chain += [graph.add("hflip"), graph.add("vflip")]
    if enc.crop:
        chain.append(graph.add("scale", f"{enc.width}:{enc.height}:force_original_aspect_ratio=increase"))
        chain.append(graph.add("crop", f"{enc.width}:{enc.height}"))
    else:
        chain.append(graph.add("scale", f"{enc.width}:{enc.height}"))
    chain += [graph.add("setsar", "1"), graph.add("format", "yuv420p"), graph.add("buffersink")]
    for a, b in zip(chain, chain[1:]):
        a.link_to(b)
    graph.configure()
    return graph
