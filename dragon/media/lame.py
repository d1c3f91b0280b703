"""MP3 encoding with the system's LAME (Debian's libmp3lame0), called through ctypes.

Why not FFmpeg's libmp3lame encoder in PyAV's wheel: the LAME bundled there is built
without compiler optimisation (every local lives on the stack: about 26,000 stack-slot
instructions against 350 in Debian's build of the same LAME 3.100), so it encodes about
3 times slower than the ffmpeg CLI; 94% of a conversion was spent in it. The system's
library is the one Debian's ffmpeg links. It is driven as FFmpeg drives it: constant
bit rate, joint stereo (mono for one channel), LAME's default quality, output at the
input rate, float samples scaled to 16-bit range (``lame_encode_buffer_float``), and
the file is what the ``lame`` command writes: the Info/LAME header (with the encoder
delay and padding, so players trim them) then the frames.

Decoding runs in a thread one batch ahead of the encoder; ctypes and PyAV let go of the
GIL, so on two cores they overlap. Where the library is missing, :func:`available` is
false and callers encode with FFmpeg's encoder instead.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from collections.abc import Iterable
from pathlib import Path

import av
import numpy as np

from dragon.errors import InternalError
from dragon.media.threads import read_ahead

JOINT_STEREO, MONO = 1, 3  # LAME's MPEG_mode values


@functools.lru_cache(maxsize=1)
def _library() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("mp3lame")
    if name is None:
        return None
    lib = ctypes.CDLL(name)
    gfp = ctypes.c_void_p
    lib.lame_init.restype = gfp
    for setter in ("num_channels", "in_samplerate", "out_samplerate", "brate", "mode", "bWriteVbrTag"):
        getattr(lib, f"lame_set_{setter}").argtypes = [gfp, ctypes.c_int]
    lib.lame_init_params.argtypes = [gfp]
    lib.lame_encode_buffer_float.argtypes = [
        gfp,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_int,
        ctypes.c_void_p,
        ctypes.c_int,
    ]
    lib.lame_encode_flush.argtypes = [gfp, ctypes.c_void_p, ctypes.c_int]
    lib.lame_get_lametag_frame.argtypes = [gfp, ctypes.c_void_p, ctypes.c_size_t]
    lib.lame_get_lametag_frame.restype = ctypes.c_size_t
    lib.lame_close.argtypes = [gfp]
    return lib


def available() -> bool:
    """Whether the system's LAME can be loaded here."""
    return _library() is not None


def encode(pcm: Iterable[av.AudioFrame], dest: Path, rate: int, channels: int, bit_rate: int) -> None:
    """Write ``pcm`` (planar float frames at ``rate`` with ``channels``, 1 or 2) to
    ``dest`` as a constant-bit-rate MP3 of ``bit_rate`` bits per second."""
    lib = _library()
    if lib is None:
        raise InternalError("the system's LAME (libmp3lame0) is not installed")
    gfp = lib.lame_init()
    if not gfp:
        raise MemoryError("lame_init failed")
    try:
        lib.lame_set_num_channels(gfp, channels)
        lib.lame_set_in_samplerate(gfp, rate)
        lib.lame_set_out_samplerate(gfp, rate)
        lib.lame_set_brate(gfp, bit_rate // 1000)
        lib.lame_set_mode(gfp, JOINT_STEREO if channels == 2 else MONO)
        lib.lame_set_bWriteVbrTag(gfp, 1)  # LAME reserves the first frame for its Info header
        if lib.lame_init_params(gfp) < 0:
            raise InternalError(f"LAME refused {channels} channels at {rate} Hz and {bit_rate} b/s")
        with open(dest, "wb") as out:
            buffer = ctypes.create_string_buffer(1 << 16)
            for frame in read_ahead(pcm):
                out.write(_encoded(lib, gfp, frame.to_ndarray(), buffer))
            written = lib.lame_encode_flush(gfp, buffer, len(buffer))
            out.write(buffer.raw[: max(0, written)])
            size = lib.lame_get_lametag_frame(gfp, buffer, len(buffer))
            if 0 < size <= len(buffer):
                out.seek(0)
                out.write(buffer.raw[:size])
    finally:
        lib.lame_close(gfp)


def _encoded(lib: ctypes.CDLL, gfp: int, planes: np.ndarray, buffer: ctypes.Array) -> bytes:
    """One batch of planar float samples (-1..1) through LAME, as FFmpeg feeds it:
    scaled to 16-bit range; the buffer grows to LAME's worst case (1.25 x samples + 7200)."""
    samples = np.ascontiguousarray(planes, dtype=np.float32) * np.float32(32768.0)
    count = samples.shape[1]
    needed = count + count // 4 + 7200
    if len(buffer) < needed:
        ctypes.resize(buffer, needed)
    right = samples[1] if samples.shape[0] > 1 else samples[0]
    written = lib.lame_encode_buffer_float(gfp, samples[0].ctypes.data, right.ctypes.data, count, buffer, len(buffer))
    if written < 0:
        raise InternalError(f"LAME failed to encode (error {written})")
    return buffer.raw[:written]
