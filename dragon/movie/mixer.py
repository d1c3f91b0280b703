"""The movie's soundtrack: every audio node and every video's own sound, placed in
time, faded, cross-faded under transitions and ducked under "master" tracks.

Mixed in chunks of a few seconds, each track decoded as the chunks reach it, so the
memory a soundtrack takes does not grow with the movie's length (float32 stereo for the
3-hour cap would be 3.8 GB). Ducking needs to know where each master sounds before the
first chunk: a first pass reads the masters alone and keeps one loudness value per
50 ms window.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from dragon.errors import InvalidContentError
from dragon.media import audio as audio_media
from dragon.media.containers import reason
from dragon.movie.sources import media_key
from dragon.sxml import Node

RATE = 44100
CHUNK = 10 * RATE  # samples mixed at a time
WINDOW = 0.05  # seconds per loudness measurement for ducking
MAX_SOURCE_SPAN = RATE * 10  # source samples a sped-up track resamples at a time


@dataclass
class Track:
    """One source of sound in the movie."""

    node: Node  # the <audio> or <video> node
    path: Path
    master: float | None  # duck-others level when this track ducks the others

    @property
    def start(self) -> int:
        return round(self.node.start * RATE)


def tracks(movie: Node, files: dict[str, Path]) -> list[Track]:
    """``files`` maps media keys (:func:`media_key`) to local files, voices included."""
    found = []
    for node in movie.walk():
        if node.tag == "audio" or (node.tag == "video" and node.flag("audio", True)):
            path = files.get(media_key(node) or "")
        else:
            continue
        if path is None or node.duration <= 0:
            continue
        master = node.number("duck-others", -1.0)
        found.append(Track(node, path, master if master >= 0 else None))
    return found


def mix(movie: Node, duration: float, files: dict[str, Path], *, chunk: int = CHUNK) -> Iterator[np.ndarray]:
    """The soundtrack from start to end, as (2, n) float32 chunks in [-1, 1] of ``chunk``
    samples (the last one shorter)."""
    total = round(duration * RATE)
    found = [track for track in tracks(movie, files) if _length(track, total) > 0]
    ducks = [_duck_gain(track, total) for track in found if track.master is not None]
    playing: dict[int, _Clip] = {}
    for first in range(0, total, chunk):
        stop = min(total, first + chunk)
        masters = np.zeros((2, stop - first), np.float32)
        others = np.zeros((2, stop - first), np.float32)
        for i, track in enumerate(found):
            start, end = track.start, track.start + _length(track, total)
            if end <= first or start >= stop:
                continue
            if i not in playing:
                playing[i] = _Clip(track)
            a, b = max(first, start), min(stop, end)
            (masters if track.master is not None else others)[:, a - first : b - first] += playing[i].read(b - a)
            if end <= stop:
                playing.pop(i).close()
        for gain in ducks:
            others *= gain.between(first, stop)
        yield np.clip(masters + others, -1.0, 1.0)


def _length(track: Track, total: int) -> int:
    """Samples the track plays, cut at the movie's end."""
    return min(round(track.node.duration * RATE), total - track.start)


class _Clip:
    """A track's sound as it plays in the movie, read front to back: from ``skip``, at
    its ``speed`` (pitch follows), looped if asked, silent once its source ends,
    scaled by ``volume`` and enveloped (:func:`_envelope`)."""

    def __init__(self, track: Track):
        node = self.node = track.node
        self.start = track.start
        self.done = 0  # samples of the clip read so far
        self.speed = node.number("speed", 1.0)
        self.volume = node.number("volume", 1.0)
        self.source = _Source(track.path, node.number("skip", 0.0), loop=node.flag("loop", False))

    def read(self, count: int) -> np.ndarray:
        if self.speed == 1.0:
            out = self.source.read(count)
        else:  # positions in the source, a bounded span of it at a time however fast it plays
            step = max(1, int(MAX_SOURCE_SPAN / self.speed))
            out = np.concatenate(
                [
                    self.source.interpolate((self.done + np.arange(at, min(count, at + step))) * self.speed)
                    for at in range(0, count, step)
                ],
                axis=1,
            )
        times = (self.start + self.done + np.arange(count)) / RATE
        self.done += count
        return out * (self.volume * _envelope(self.node, times))

    def close(self) -> None:
        self.source.close()


class _Source:
    """A file's sound as (2, n) float32 at RATE from ``skip``, decoded as it is read; a
    mono file is copied to both sides at full level. Past its end: silence, or, with
    ``loop``, the same sound again from ``skip``. A video without sound is silent."""

    def __init__(self, path: Path, skip: float, *, loop: bool):
        self.path, self.skip, self.loop = path, skip, loop
        self.buffer = np.zeros((2, 0), np.float32)
        self.base = 0  # source index of buffer[:, 0]
        self.pass_start = 0  # source index where the current pass over the file began
        self.ended = False
        self.container: av.container.InputContainer | None = None
        self.frames: Iterator[np.ndarray] = iter(())
        self._open()

    def read(self, count: int) -> np.ndarray:
        self._fill(self.base + count)
        out = self.buffer[:, :count]
        if out.shape[1] < count:
            out = np.concatenate([out, np.zeros((2, count - out.shape[1]), np.float32)], axis=1)
        self._drop(self.base + count)
        return out

    def interpolate(self, positions: np.ndarray) -> np.ndarray:
        """The sound at fractional source positions (increasing, from where the last call ended)."""
        self._fill(int(positions[-1]) + 2)
        index = np.arange(self.base, self.base + self.buffer.shape[1])
        out = np.zeros((2, positions.size), np.float32)
        if index.size:
            for side in range(2):
                out[side] = np.interp(positions, index, self.buffer[side], right=0.0)
        self._drop(int(positions[-1]))
        return out

    def _fill(self, upto: int) -> None:
        """Decode until the buffer holds source samples up to index ``upto`` (or the end)."""
        pieces = [self.buffer]
        have = self.base + self.buffer.shape[1]
        while have < upto and not self.ended:
            piece = next(self.frames, None)
            if piece is None:
                self._reopen(have)
                continue
            pieces.append(piece)
            have += piece.shape[1]
        self.buffer = np.concatenate(pieces, axis=1) if len(pieces) > 1 else self.buffer

    def _drop(self, before: int) -> None:
        cut = max(0, min(before - self.base, self.buffer.shape[1]))
        self.buffer, self.base = self.buffer[:, cut:], self.base + cut

    def _reopen(self, have: int) -> None:
        """The file is read up to source index ``have``: again from ``skip`` for a loop,
        unless that pass gave nothing."""
        self.close()
        if self.loop and have > self.pass_start:
            self.pass_start = have
            self._open()
        else:
            self.ended = True

    def _open(self) -> None:
        try:
            self.container = audio_media.open_audio(self.path)
        except (av.FFmpegError, InvalidContentError) as exc:
            raise self._error(exc) from None
        self.frames = self._decode(self.container)

    def _decode(self, container: av.container.InputContainer) -> Iterator[np.ndarray]:
        try:
            if not container.streams.audio:
                return
            stream = container.streams.audio[0]
            if self.skip > 0:
                container.seek(int(self.skip * av.time_base), backward=True)
            mono = stream.codec_context.channels == 1
            resampler = av.AudioResampler(format="fltp", layout="mono" if mono else "stereo", rate=RATE)
            for frame in itertools.chain(container.decode(stream), [None]):  # None: what the resampler holds back
                first = frame.time if frame is not None else None
                for out in resampler.resample(frame):
                    data: np.ndarray = out.to_ndarray()
                    data = np.repeat(data, 2, axis=0) if mono else data.reshape(2, -1)
                    if first is not None and first < self.skip:  # the seek landed before the skip point
                        data, first = data[:, round((self.skip - first) * RATE) :], None
                    yield data.astype(np.float32, copy=False)
        except (av.FFmpegError, InvalidContentError) as exc:
            raise self._error(exc) from None

    def _error(self, exc: Exception) -> InvalidContentError:
        return InvalidContentError(f"the sound of {self.path.name} could not be decoded ({reason(exc)})")

    def close(self) -> None:
        if self.container is not None:
            self.container.close()
            self.container = None


def _envelope(node: Node, t: np.ndarray) -> np.ndarray:
    """Gain at movie times ``t``: fades of the node itself and the cross-fades of the
    transitions around it and around each of its ancestors in a sequence."""
    gain = np.ones(t.size, np.float32)
    fadein, fadeout = node.number("fadein", 0.0), node.number("fadeout", 0.0)
    end = node.start + node.duration
    if fadein > 0:
        gain *= np.clip((t - node.start) / fadein, 0, 1)
    if fadeout > 0:
        gain *= np.clip((end - t) / fadeout, 0, 1)
    current = node
    while current.parent is not None:
        siblings = current.parent.children
        i = next(k for k, c in enumerate(siblings) if c is current)
        if current.parent.tag in ("sequence", "body"):
            after = next((c for c in siblings[i + 1 :] if c.tag not in ("filter", "animator")), None)
            before = next((c for c in reversed(siblings[:i]) if c.tag not in ("filter", "animator")), None)
            if after is not None and after.tag == "transition" and after.duration > 0:
                gain *= np.clip((after.start + after.duration - t) / after.duration, 0, 1)
            if before is not None and before.tag == "transition" and before.duration > 0:
                gain *= np.clip((t - before.start) / before.duration, 0, 1)
        current = current.parent
    return gain


class _DuckGain:
    """The gain a master puts on the other tracks, one value per loudness window."""

    def __init__(self, per_window: np.ndarray, window: int):
        self.per_window, self.window = per_window, window

    def between(self, first: int, stop: int) -> np.ndarray:
        index = np.minimum(np.arange(first, stop) // self.window, self.per_window.size - 1)
        return self.per_window[index]


def _duck_gain(track: Track, total: int) -> _DuckGain:
    """Gain of the other tracks: ``duck-others`` wherever this master sounds (above
    ``duck-threshold`` of its peak), widened by ``duck-margin`` and eased over ``duck-fade``.
    The master is read once here, chunk by chunk, for its loudness per window."""
    node = track.node
    level = float(track.master or 0.0)
    threshold = node.number("duck-threshold", 0.05)
    margin, fade = node.number("duck-margin", 0.5), node.number("duck-fade", 1.0)
    window = int(WINDOW * RATE)
    blocks = max(1, total // window)
    energy = np.zeros(blocks, np.float32)
    start, length = track.start, _length(track, total)
    clip = _Clip(track)
    try:
        for at in range(start, start + length, CHUNK):
            sound = np.abs(clip.read(min(CHUNK, start + length - at))).max(axis=0)
            # Padded with silence to whole windows of the movie's time, which cannot raise a maximum.
            first = at // window
            padded = np.zeros(-(-(at - first * window + sound.size) // window) * window, np.float32)
            padded[at - first * window :][: sound.size] = sound
            peaks = padded.reshape(-1, window).max(axis=1)[: max(0, blocks - first)]
            energy[first : first + peaks.size] = np.maximum(energy[first : first + peaks.size], peaks)
    finally:
        clip.close()
    peak = float(energy.max())
    if peak <= 0:
        return _DuckGain(np.ones(1, np.float32), window)
    loud = (energy > threshold * peak).astype(np.float32)
    reach = round(margin / WINDOW)
    if reach > 0:
        loud = (np.convolve(loud, np.ones(2 * reach + 1), mode="same") > 0).astype(np.float32)
    smooth = max(1, round(fade / WINDOW))
    eased = np.convolve(loud, np.ones(smooth) / smooth, mode="same")
    return _DuckGain((1.0 - (1.0 - level) * np.clip(eased, 0, 1)).astype(np.float32), window)
