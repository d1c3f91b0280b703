"""Output profiles of ``video.create``: the 66 names the 2014 docs listed.

Sizes are those documented in 2012 where a table gives them, inferred otherwise (see
docs/sxml.md, "Profiles"). Each profile writes the container and codecs the 2012 table
gives it (FLV with Sorenson Spark and MP3, ASF with WMV and WMA, MPEG-2 program streams
for DVD, MPEG-4 Part 2 for mobiles); the others, H.264 and AAC in MP4. Bitrates are in
kbit/s from here to the encoder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

DEFAULT_PROFILE = "360p"
DEFAULT_FPS = Fraction(25)
AUDIO_RATE = 44100


@dataclass(frozen=True, eq=False)
class Format:
    """A file's container and codecs, by their FFmpeg names. ``video`` "h264" is H.264
    from whichever encoder the worker has (NVENC or libx264); ``max_gop`` caps the frames
    between keyframes where the format demands it; ``video_options`` go to the encoder
    and ``muxer_options`` to the muxer."""

    muxer: str
    video: str
    audio: str
    extension: str
    content_type: str
    audio_rate: int = AUDIO_RATE
    max_gop: int | None = None
    video_options: dict[str, str] = field(default_factory=dict)
    muxer_options: dict[str, str] = field(default_factory=dict)


MP4 = Format("mp4", "h264", "aac", "mp4", "video/mp4", muxer_options={"movflags": "+faststart"})
MP4_PART2 = Format("mp4", "mpeg4", "aac", "mp4", "video/mp4", muxer_options={"movflags": "+faststart"})
FLV = Format("flv", "flv", "libmp3lame", "flv", "video/x-flv")
FLV_H264 = Format("flv", "h264", "aac", "flv", "video/x-flv")
WMV1 = Format("asf", "wmv1", "wmav1", "wmv", "video/x-ms-wmv")
WMV2 = Format("asf", "wmv2", "wmav1", "wmv", "video/x-ms-wmv")
# DVD-Video: MPEG-2 and MPEG audio layer 2 at 48 kHz in 2048-byte packs, at most 15 frames a GOP
# and 9.8 Mbit/s with the VBV buffer of the DVD profile (what ``ffmpeg -target dvd`` sets).
DVD = Format(
    "dvd",
    "mpeg2video",
    "mp2",
    "mpg",
    "video/mpeg",
    audio_rate=48000,
    max_gop=15,
    video_options={"maxrate": "9000k", "bufsize": "1835008"},
    muxer_options={"muxrate": "10080000", "packetsize": "2048"},
)
MPEG1 = Format("mpeg", "mpeg1video", "mp2", "mpg", "video/mpeg")
PREVIEW = FLV_H264  # the spec's previews are FLV streams ("…/360p/preview.flv")


@dataclass(frozen=True)
class Profile:
    name: str
    width: int  # stored size; the picture's shape is width × pixel_aspect by height
    height: int
    fps: Fraction
    video_bitrate: int  # kbit/s
    audio_bitrate: int  # kbit/s
    format: Format = MP4
    pixel_aspect: Fraction = Fraction(1)

    @property
    def audio_rate(self) -> int:
        return self.format.audio_rate


# base name -> (width, height, video kbit/s, audio kbit/s, fps or None for the default / the suffix)
_DOCUMENTED: dict[str, tuple[int, int, int, int, Fraction | None]] = {
    "iphone": (480, 320, 700, 96, None),
    "youtube": (640, 360, 1024, 128, None),
    "quicktime": (640, 480, 1024, 128, None),
    "quicktime-small": (320, 240, 256, 64, None),
    "flash-small": (320, 240, 192, 64, None),
    "iphone-flv": (480, 320, 1024, 96, None),
    "youtube-flv": (640, 360, 1700, 128, None),
    "flash": (640, 480, 512, 96, None),
    "flash-hq": (640, 480, 1200, 128, None),
    "mobile-small": (176, 144, 92, 32, Fraction(15)),
    "mobile": (320, 240, 256, 32, None),
    "wmv1": (640, 480, 1024, 128, None),
    "wmv2": (640, 480, 1024, 128, None),
    "dvd-ntsc-4-3": (720, 480, 6000, 192, Fraction(30000, 1001)),
    "dvd-ntsc-16-9": (720, 480, 6000, 192, Fraction(30000, 1001)),
    "dvd-ntsc-4-3-h": (352, 240, 3000, 192, Fraction(30000, 1001)),
    "dvd-ntsc-16-9-h": (352, 240, 3000, 192, Fraction(30000, 1001)),
    "dvd-pal-4-3": (720, 576, 6000, 192, None),
    "dvd-pal-16-9": (720, 576, 6000, 192, None),
    "dvd-pal-4-3-h": (352, 288, 3000, 192, None),
    "dvd-pal-16-9-h": (352, 288, 3000, 192, None),
    "720p": (1280, 720, 1500, 256, None),
}
DOCUMENTED_NAMES = frozenset(_DOCUMENTED)

# Inferred: no public table gives these sizes or bitrates.
_INFERRED: dict[str, tuple[int, int, int, int, Fraction | None]] = {
    "240p": (426, 240, 400, 64, None),
    "360p": (640, 360, 1024, 128, None),
    "480p": (854, 480, 1200, 128, None),
    "480p-4-3": (640, 480, 1024, 128, None),
    "720p-hq": (1280, 720, 3000, 256, None),
    "720p-vhq": (1280, 720, 5000, 256, None),
    "1080p": (1920, 1080, 4500, 256, None),
    "cine-half-hd": (960, 540, 2000, 192, Fraction(24)),
    "dvd-mpeg1": (352, 288, 1150, 224, None),
    "dvd-mpeg1-small": (176, 144, 400, 64, None),
    "flash-h264": (640, 480, 800, 96, None),
    "flash-large-4-3": (800, 600, 1200, 128, None),
    "flash-med-16-9": (640, 360, 800, 96, None),
    "iphone-16-9": (480, 270, 700, 96, None),
    "iphone-16-9-slow": (480, 270, 500, 96, Fraction(15)),
    "iphone-16-9-12fp": (480, 270, 500, 96, Fraction(12)),
    "iphone-24p": (480, 320, 700, 96, Fraction(24)),
    "iphone-slow": (480, 320, 500, 96, Fraction(15)),
    "iphone-sslow": (480, 320, 350, 96, Fraction(10)),
    "ntsc-wide": (854, 480, 2000, 192, Fraction(30000, 1001)),
    "ntsc-wide-wmv": (854, 480, 2000, 192, Fraction(30000, 1001)),
    "special": (640, 360, 1024, 128, None),
    "square-400": (400, 400, 800, 128, None),
    "square-640": (640, 640, 1200, 128, None),
    "th720p": (1280, 720, 1500, 256, None),
    "wmv2-large-4-3": (800, 600, 1500, 128, None),
    "youtube-slow": (640, 360, 700, 128, Fraction(15)),
    "youtube-slow-flv": (640, 360, 700, 128, Fraction(15)),
}

PROFILE_NAMES: tuple[str, ...] = (
    "1080p",
    "1080p-24-fps",
    "240p",
    "240p-24-fps",
    "360p",
    "360p-11-988-fps",
    "360p-12-5-fps",
    "360p-12-fps",
    "360p-23-976-fps",
    "360p-24-fps",
    "360p-29-97-fps",
    "480p",
    "480p-24-fps",
    "480p-4-3-29-97-fps",
    "720p",
    "720p-12-5-fps",
    "720p-12-fps",
    "720p-23-98-fps",
    "720p-24-fps",
    "720p-29-97-fps",
    "720p-hq",
    "720p-vhq-29-97-fps",
    "cine-half-hd",
    "dvd-mpeg1",
    "dvd-mpeg1-small",
    "dvd-ntsc-16-9",
    "dvd-ntsc-16-9-h",
    "dvd-ntsc-4-3",
    "dvd-ntsc-4-3-h",
    "dvd-pal-16-9",
    "dvd-pal-16-9-h",
    "dvd-pal-4-3",
    "dvd-pal-4-3-h",
    "flash",
    "flash-h264",
    "flash-hq",
    "flash-large-4-3",
    "flash-med-16-9",
    "flash-small",
    "iphone",
    "iphone-16-9",
    "iphone-16-9-12fp",
    "iphone-16-9-slow",
    "iphone-24p",
    "iphone-flv",
    "iphone-slow",
    "iphone-sslow",
    "mobile",
    "mobile-small",
    "ntsc-wide",
    "ntsc-wide-wmv",
    "quicktime",
    "quicktime-small",
    "special",
    "square-400",
    "square-640",
    "th720p",
    "wmv1",
    "wmv2",
    "wmv2-large-4-3",
    "youtube",
    "youtube-12-5fps",
    "youtube-5fps",
    "youtube-flv",
    "youtube-slow",
    "youtube-slow-flv",
)

# Frame-rate suffixes, longest first so that "-12-5-fps" is not read as "-5-fps".
_RATE_SUFFIXES: tuple[tuple[str, Fraction], ...] = (
    ("-11-988-fps", Fraction(11988, 1000)),
    ("-23-976-fps", Fraction(24000, 1001)),
    ("-23-98-fps", Fraction(24000, 1001)),
    ("-29-97-fps", Fraction(30000, 1001)),
    ("-12-5-fps", Fraction(25, 2)),
    ("-12-5fps", Fraction(25, 2)),
    ("-12-fps", Fraction(12)),
    ("-24-fps", Fraction(24)),
    ("-5fps", Fraction(5)),
)
_KNOWN = frozenset(PROFILE_NAMES)
_SIZES = {**_INFERRED, **_DOCUMENTED}


# Containers and codecs other than H.264 in MP4 (the 2012 table; the -flv, -wmv and
# flash names it does not list follow their family, dvd-mpeg1 is VCD-like MPEG-1).
_FORMATS: dict[str, Format] = {
    **dict.fromkeys(
        (
            "flash-small",
            "iphone-flv",
            "youtube-flv",
            "flash",
            "flash-hq",
            "flash-large-4-3",
            "flash-med-16-9",
            "youtube-slow-flv",
        ),
        FLV,
    ),
    "flash-h264": FLV_H264,
    **dict.fromkeys(("mobile-small", "mobile"), MP4_PART2),
    "wmv1": WMV1,
    **dict.fromkeys(("wmv2", "wmv2-large-4-3", "ntsc-wide-wmv"), WMV2),
    **dict.fromkeys(
        (
            f"dvd-{system}-{shape}{half}"
            for system in ("ntsc", "pal")
            for shape in ("4-3", "16-9")
            for half in ("", "-h")
        ),
        DVD,
    ),
    **dict.fromkeys(("dvd-mpeg1", "dvd-mpeg1-small"), MPEG1),
}


def _pixel_aspect(base: str, width: int, height: int) -> Fraction:
    """DVD frames are stored at 720 (or 352) columns whatever their shape: their pixels
    are stretched to a 4:3 or 16:9 picture."""
    if not base.startswith(("dvd-ntsc", "dvd-pal")):
        return Fraction(1)
    shape = Fraction(16, 9) if "16-9" in base else Fraction(4, 3)
    return shape / Fraction(width, height)


def profile(name: str) -> Profile:
    """The profile called ``name``; KeyError for a name the API never listed."""
    if name not in _KNOWN:
        raise KeyError(name)
    base, fps = name, None
    for suffix, rate in _RATE_SUFFIXES:
        if name.endswith(suffix):
            base, fps = name[: -len(suffix)], rate
            break
    width, height, video_kbps, audio_kbps, base_fps = _SIZES[base]
    return Profile(
        name,
        width,
        height,
        fps or base_fps or DEFAULT_FPS,
        video_kbps,
        audio_kbps,
        _FORMATS.get(base, MP4),
        _pixel_aspect(base, width, height),
    )
