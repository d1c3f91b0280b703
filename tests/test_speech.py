"""Text to speech (dragon.media.speech) with the real espeak-ng."""

from __future__ import annotations

import itertools
from pathlib import Path

import av
import numpy as np
import pytest

from dragon.errors import InvalidContentError, TextToSpeechError
from dragon.media.speech import VOICES, synthesize

SENTENCE = "Hello, this is a test of the speech synthesis."
FEMALE = (
    "neospeech:julie",
    "neospeech:kate",
    "neospeech:neobridget",
    "neospeech:neovioleta",
    "att:crystal",
    "att:rosa",
)
MALE = ("neospeech:paul", "att:mike", "att:alberto")


def decode(path: Path) -> tuple[np.ndarray, int]:
    """Mono float samples and their rate, read back with PyAV."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        frames = [frame.to_ndarray().reshape(-1) for frame in container.decode(stream)]
        return np.concatenate(frames).astype(np.float32) / 32768, stream.rate


def pitch(samples: np.ndarray, rate: int) -> float:
    """Median fundamental frequency (Hz) of the loud 40 ms windows, by autocorrelation."""
    size, found = int(0.04 * rate), []
    for start in range(0, samples.size - size, size):
        window = samples[start : start + size]
        if np.sqrt(np.mean(window**2)) < 0.05:
            continue
        correlation = np.correlate(window, window, "full")[size - 1 :]
        low, high = rate // 400, rate // 70
        found.append(rate / (low + int(np.argmax(correlation[low:high]))))
    return float(np.median(found))


def test_speech_is_a_decodable_wav_with_sound_and_its_duration(tmp_path: Path) -> None:
    out = tmp_path / "speech.wav"
    duration = synthesize(SENTENCE, None, out)
    samples, rate = decode(out)
    assert rate == 48000
    assert duration == pytest.approx(samples.size / rate, abs=1e-3)
    assert 1.0 < duration < 10.0
    assert np.sqrt(np.mean(samples**2)) > 0.02 and np.abs(samples).max() > 0.2


def test_the_sample_rate_is_the_one_asked_for(tmp_path: Path) -> None:
    synthesize("Rate", None, tmp_path / "speech.wav", rate=22050)
    assert decode(tmp_path / "speech.wav")[1] == 22050


def test_durations_grow_with_the_text(tmp_path: Path) -> None:
    short = synthesize("Hello.", None, tmp_path / "short.wav")
    medium = synthesize(SENTENCE, None, tmp_path / "medium.wav")
    long = synthesize(" ".join([SENTENCE] * 4), None, tmp_path / "long.wav")
    assert short < medium < long
    assert long > 3 * medium


def test_each_documented_voice_has_its_own_sound_and_sex(tmp_path: Path) -> None:
    sounds = {}
    for voice in VOICES:
        synthesize(SENTENCE, voice, tmp_path / f"{voice}.wav")
        sounds[voice] = decode(tmp_path / f"{voice}.wav")[0]
    for first, second in itertools.combinations(VOICES, 2):
        assert sounds[first].shape != sounds[second].shape or not np.array_equal(sounds[first], sounds[second]), (
            first,
            second,
        )
    pitches = {voice: pitch(samples, 48000) for voice, samples in sounds.items()}
    assert min(pitches[voice] for voice in FEMALE) > 1.3 * max(pitches[voice] for voice in MALE), pitches


def same_speech(tmp_path: Path, text: str, *voices: str | None) -> bool:
    samples = []
    for index, voice in enumerate(voices):
        synthesize(text, voice, tmp_path / f"{index}.wav")
        samples.append(decode(tmp_path / f"{index}.wav")[0])
    return all(np.array_equal(samples[0], other) for other in samples[1:])


def test_voice_names_are_case_insensitive_and_julie_is_the_default(tmp_path: Path) -> None:
    assert same_speech(tmp_path, "Default voice", None, "", "NeoSpeech:Julie", "espeak:en-us+f3")


def test_plain_espeak_voices_are_accepted(tmp_path: Path) -> None:
    assert same_speech(tmp_path, "Bonjour tout le monde", "espeak:fr", "fr")
    assert not same_speech(tmp_path, "Bonjour tout le monde", "espeak:fr", "espeak:de")


@pytest.mark.parametrize("voice", ["neospeech:bob", "espeak:zz", "espeak:en+nobody", "-w /tmp/x", "espeak:--help"])
def test_an_unknown_voice_is_invalid_content_listing_the_choices(tmp_path: Path, voice: str) -> None:
    with pytest.raises(InvalidContentError) as caught:
        synthesize(SENTENCE, voice, tmp_path / "speech.wav")
    assert str(caught.value).startswith(
        f"InvalidContentError: voice '{voice}' is not available; choose one of: neospeech:julie, neospeech:paul,"
    )
    assert not (tmp_path / "speech.wav").exists()


def test_option_like_text_is_spoken_not_obeyed(tmp_path: Path) -> None:
    victim = tmp_path / "victim.wav"
    hostile = f"-w {victim} --help -v de"
    duration = synthesize(hostile, None, tmp_path / "speech.wav")
    assert not victim.exists()
    assert duration > 2.0  # every word of it was read out
    assert same_speech(tmp_path, "--help", None, "neospeech:julie")


def test_empty_and_over_long_texts_are_invalid_content(tmp_path: Path) -> None:
    with pytest.raises(InvalidContentError, match="no text to speak"):
        synthesize(" \n\x01 ", None, tmp_path / "speech.wav")
    with pytest.raises(InvalidContentError, match="at most 5000 characters"):
        synthesize("a" * 5001, None, tmp_path / "speech.wav")


def test_without_espeak_ng_it_is_a_text_to_speech_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # a worker where espeak-ng is not installed
    with pytest.raises(TextToSpeechError) as caught:
        synthesize(SENTENCE, None, tmp_path / "speech.wav")
    assert str(caught.value) == "TextToSpeechError: espeak-ng is not installed on this worker"
