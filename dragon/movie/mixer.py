"""The movie's soundtrack: every audio node and every video's own sound, placed in
time, faded, cross-faded under transitions and ducked under "master" tracks.

Mixed once per render as float32 stereo for the whole movie; cheap next to the
pictures, and the segments of a parallel render all share it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import av
import numpy as np

from dragon.errors import InvalidContentError
from dragon.media import audio as audio_media
from dragon.media.containers import reason
from dragon.movie.sources import media_key

RATE = 44100
WINDOW = 0.05  # seconds per loudness measurement for ducking


@dataclass
class Track:
    """One source of sound in the movie."""

    node: Any  # the <audio> or <video> node
    path: Path
    master: float | None  # duck-others level when this track ducks the others


def tracks(movie: Any, files: dict[str, Path]) -> list[Track]:
    """``files`` maps media keys (:func:`media_key`) to local files, voices included."""
    found = []
    for node in _walk(movie):
        if node.tag == "audio" or (node.tag == "video" and node.flag("audio", True)):
            path = files.get(media_key(node) or "")
        else:
            continue
        if path is None or node.duration <= 0:
            continue
        master = node.number("duck-others", -1.0)
        found.append(Track(node, path, master if master >= 0 else None))
    return found


def mix(movie: Any, duration: float, files: dict[str, Path]) -> np.ndarray:
    """(2, samples) float32 in [-1, 1] for the whole movie."""
    total = round(duration * RATE)
    masters = np.zeros((2, total), np.float32)
    others = np.zeros((2, total), np.float32)
    ducks: list[tuple[Track, np.ndarray]] = []
    for track in tracks(movie, files):
        placed = _place(track, total)
        if placed is None:
            continue
        start, clip = placed
        target = others if track.master is None else masters
        target[:, start : start + clip.shape[1]] += clip
        if track.master is not None:
            alone = np.zeros((2, total), np.float32)  # a master's own sound, where it plays
            alone[:, start : start + clip.shape[1]] = clip
            ducks.append((track, alone))
    for track, alone in ducks:
        others *= _duck_gain(track, alone)
    return np.clip(masters + others, -1.0, 1.0)


def _walk(node: Any) -> Iterator[Any]:
    yield node
    for child in node.children:
        yield from _walk(child)


def _place(track: Track, total: int) -> tuple[int, np.ndarray] | None:
    """Where the track starts (in samples) and its sound there, enveloped."""
    node = track.node
    start = round(node.start * RATE)
    length = min(round(node.duration * RATE), total - start)
    if length <= 0:
        return None
    speed = node.number("speed", 1.0)
    skip = node.number("skip", 0.0)
    samples = _decode(track.path, skip, length / RATE * speed)
    if speed != 1.0 and samples.shape[1] > 1:  # played faster or slower: so is the pitch
        positions = np.arange(int(samples.shape[1] / speed)) * speed
        samples = np.stack([np.interp(positions, np.arange(samples.shape[1]), ch) for ch in samples]).astype(np.float32)
    if node.flag("loop", False) and 0 < samples.shape[1] < length:
        samples = np.tile(samples, (1, length // samples.shape[1] + 1))
    clip = np.zeros((2, length), np.float32)
    clip[:, : min(length, samples.shape[1])] = samples[:, :length]
    clip *= node.number("volume", 1.0) * _envelope(node, length)
    return start, clip


def _envelope(node: Any, length: int) -> np.ndarray:
    """Fades of the node itself and the cross-fades of the transitions around it and
    around each of its ancestors in a sequence."""
    t = node.start + np.arange(length) / RATE
    gain = np.ones(length, np.float32)
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


def _duck_gain(track: Track, placed: np.ndarray) -> np.ndarray:
    """Gain of the other tracks: ``duck-others`` wherever this master sounds (above
    ``duck-threshold`` of its peak), widened by ``duck-margin`` and eased over ``duck-fade``."""
    node = track.node
    level = float(track.master or 0.0)
    threshold = node.number("duck-threshold", 0.05)
    margin, fade = node.number("duck-margin", 0.5), node.number("duck-fade", 1.0)
    window = int(WINDOW * RATE)
    total = placed.shape[1]
    blocks = max(1, total // window)
    energy = np.abs(placed[:, : blocks * window]).max(axis=0).reshape(blocks, window).max(axis=1)
    peak = float(energy.max())
    if peak <= 0:
        return np.ones(total, np.float32)
    loud = (energy > threshold * peak).astype(np.float32)
    reach = round(margin / WINDOW)
    if reach > 0:
        loud = np.convolve(loud, np.ones(2 * reach + 1), mode="same") > 0
    smooth = max(1, round(fade / WINDOW))
    loud = np.convolve(loud.astype(np.float32), np.ones(smooth) / smooth, mode="same")
    per_sample = np.repeat(loud, window)
    per_sample = np.concatenate([per_sample, np.full(total - per_sample.size, per_sample[-1] if per_sample.size else 0)])
    return (1.0 - (1.0 - level) * np.clip(per_sample, 0, 1)).astype(np.float32)


def _decode(path: Path, skip: float, seconds: float) -> np.ndarray:
    """(2, n) float32 at RATE from ``skip`` for ``seconds`` (less if the file ends).
    A video without a sound track gives silence."""
    wanted = round(seconds * RATE) + RATE // 10
    chunks: list[np.ndarray] = []
    have = 0
    try:
        with audio_media.open_audio(path) as container:
            if not container.streams.audio:
                return np.zeros((2, 0), np.float32)
            stream = container.streams.audio[0]
            if skip > 0:
                container.seek(int(skip * av.time_base), backward=True)
            mono = stream.codec_context.channels == 1  # copied to both sides at full level, not panned
            resampler = av.AudioResampler(format="fltp", layout="mono" if mono else "stereo", rate=RATE)
            for frame in container.decode(stream):
                first = frame.time
                for out in resampler.resample(frame):
                    data = out.to_ndarray()
                    data = np.repeat(data, 2, axis=0) if mono else data.reshape(2, -1)
                    if first is not None and first < skip:  # the seek landed before the skip point
                        cut = round((skip - first) * RATE)
                        data, first = data[:, cut:], None
                    chunks.append(data)
                    have += data.shape[1]
                if have >= wanted:
                    break
    except (av.FFmpegError, InvalidContentError) as exc:
        raise InvalidContentError(f"the sound of {path.name} could not be decoded ({reason(exc)})") from None
    return np.concatenate(chunks, axis=1)[:, :wanted] if chunks else np.zeros((2, 0), np.float32)
