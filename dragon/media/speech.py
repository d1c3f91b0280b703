"""Text to speech for SXML's ``<audio voice="...">Text</audio>``, with espeak-ng.

The original service spoke with NeoSpeech and AT&T voices, which are not free software;
each documented voice maps onto an espeak-ng voice of the same language and sex. The text
goes to espeak-ng on stdin, never on its command line, so a text such as ``-w /etc/passwd``
is spoken, not obeyed.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

from dragon.errors import InvalidContentError, TextToSpeechError
from dragon.media.audio import mono, write_wav

ESPEAK = "espeak-ng"
MAX_CHARACTERS = 5000
TIMEOUT = 60.0  # seconds; espeak-ng speaks 5000 characters in about 2
DEFAULT_VOICE = "neospeech:julie"
# The voices the Stupeflix docs listed -> espeak-ng language + variant (f: female, m: male).
VOICES: dict[str, str] = {
    "neospeech:julie": "en-us+f3",
    "neospeech:paul": "en-us+m3",
    "neospeech:kate": "en-us+f4",
    "neospeech:neobridget": "en+f2",  # British; espeak-ng 1.51 drops the variant of "en-gb"
    "neospeech:neovioleta": "es-419+f3",
    "att:crystal": "en-us+f2",
    "att:mike": "en-us+m1",
    "att:rosa": "es-419+f1",
    "att:alberto": "es-419+m3",
}
# Any installed espeak-ng voice: "espeak:fr", "fr", "espeak:en-gb+m2".
PLAIN_VOICE = re.compile(r"(?:espeak:)?([a-z]{2,3}(?:-[a-z0-9]+)*)(?:\+([a-z0-9_]+))?", re.IGNORECASE)
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # never meant to be spoken


def synthesize(text: str, voice: str | None, out: Path, *, rate: int = 48000) -> float:
    """Speak ``text`` into a mono 16-bit WAV at ``rate`` Hz; returns its duration in seconds."""
    if len(text) > MAX_CHARACTERS:
        raise InvalidContentError(f"a text to speak has at most {MAX_CHARACTERS} characters")
    spoken = CONTROL.sub(" ", text).strip()
    if not spoken:
        raise InvalidContentError("there is no text to speak")
    binary = shutil.which(ESPEAK)
    if binary is None:
        raise TextToSpeechError(f"{ESPEAK} is not installed on this worker")
    name = espeak_voice(voice, binary)
    raw = out.with_name(out.name + ".espeak.wav")
    try:
        try:
            done = subprocess.run(
                [binary, "-b", "1", "--stdin", "-v", name, "-w", str(raw.resolve())],
                input=spoken.encode(),
                capture_output=True,
                timeout=TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise TextToSpeechError(f"speaking the text took more than {TIMEOUT:.0f} s") from None
        if done.returncode != 0 or not raw.exists():
            reason = done.stderr.decode(errors="replace").strip().splitlines()[:1]
            raise TextToSpeechError(f"{ESPEAK} failed ({reason[0] if reason else done.returncode})")
        samples = np.concatenate([*mono(raw, rate), np.zeros(0, np.float32)])
    finally:
        raw.unlink(missing_ok=True)
    write_wav(out, samples, rate)
    return samples.size / rate


def espeak_voice(voice: str | None, binary: str) -> str:
    """The espeak-ng voice for an SXML ``voice`` attribute (case-insensitive)."""
    key = (voice or DEFAULT_VOICE).strip().lower()
    if key in VOICES:
        return VOICES[key]
    match = PLAIN_VOICE.fullmatch(key)
    languages, variants = installed_voices(binary)
    known = match and any(language == match[1] or language.startswith(match[1] + "-") for language in languages)
    if match and known and (match[2] is None or match[2] in variants):
        return match[1] + (f"+{variants[match[2]]}" if match[2] else "")
    raise InvalidContentError(
        f"voice '{voice}' is not available; choose one of: {', '.join(VOICES)}, "
        "or espeak:<language>[+<variant>] with an installed espeak-ng voice, such as espeak:fr or espeak:en-gb+m2"
    )


@functools.lru_cache(maxsize=4)
def installed_voices(binary: str) -> tuple[frozenset[str], dict[str, str]]:
    """espeak-ng's languages (MBROLA voices left out: they need another engine) and its
    variants (lower-case name -> file name)."""

    def listing(argument: str) -> list[list[str]]:
        run = subprocess.run([binary, argument], capture_output=True, timeout=TIMEOUT, check=False)
        return [line.split() for line in run.stdout.decode(errors="replace").splitlines()[1:] if line.split()]

    voices = [row for row in listing("--voices") if len(row) > 4 and not row[4].startswith("mb/")]
    variants = [row[4][3:] for row in listing("--voices=variant") if len(row) > 4 and row[4].startswith("!v/")]
    return frozenset(row[1].lower() for row in voices), {name.lower(): name for name in variants}
