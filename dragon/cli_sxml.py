"""``dragon sxml``: check a video definition offline and print it annotated with when
every node plays, the way the renderer will time it."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import IO
from urllib.parse import unquote, urlparse

import click

from dragon.config import Settings
from dragon.errors import TaskError
from dragon.sxml import Node, annotate, parse, resolve

SPEECH_WORDS_PER_SECOND = 2.5  # 150 words a minute: the estimate for a TTS text
SPEECH_MIN_SECONDS = 1.0


def speech_estimate(text: str) -> float:
    """How long speaking ``text`` takes, roughly: for machines without espeak-ng."""
    return max(SPEECH_MIN_SECONDS, len(text.split()) / SPEECH_WORDS_PER_SECOND)


class SourceLengths:
    """``media_length`` for the CLI: ``--length`` overrides first, then local files and
    http(s) URLs (fetched with the service's safe fetcher) probed with the service's own
    media helpers; speech is synthesised as the renderer does (estimated without espeak-ng)."""

    def __init__(self, overrides: dict[str, float], base: Path, scratch: Path):
        self.overrides = overrides
        self.base = base
        self.scratch = scratch
        self.known: dict[tuple[str, str], float] = {}

    def __call__(self, node: Node) -> float | None:
        filename = node.attrs.get("filename", "").strip()
        if not filename:
            return self.overrides[node.text] if node.text in self.overrides else self.speech(node)
        if filename in self.overrides:
            return self.overrides[filename]
        if (node.tag, filename) not in self.known:
            self.known[node.tag, filename] = self.probe(node.tag, filename)
        return self.known[node.tag, filename]

    def speech(self, node: Node) -> float:
        from dragon.errors import TextToSpeechError
        from dragon.media import speech

        try:
            return speech.synthesize(node.text, node.attrs.get("voice"), self.scratch / f"voice-{len(self.known)}.wav")
        except TextToSpeechError:
            return speech_estimate(node.text)
        except TaskError as exc:
            raise click.ClickException(f"line {node.line}: {exc}") from None

    def probe(self, tag: str, filename: str) -> float:
        from dragon.media import audio
        from dragon.media.video.probe import probe as probe_video

        probe = audio.probe if tag == "audio" else probe_video
        try:
            return probe(self.local(filename)).duration
        except TaskError as exc:
            raise click.ClickException(f"{filename}: {exc}; give its length with --length {filename}=SECONDS") from None

    def local(self, filename: str) -> Path:
        url = urlparse(filename)
        if url.scheme in ("http", "https"):
            from dragon.storage.fetch import Fetcher

            dest = self.scratch / f"source-{len(self.known)}"
            return Fetcher(Settings()).fetch(filename, dest).path
        path = Path(unquote(url.path)) if url.scheme == "file" else Path(filename)
        return path if path.is_absolute() else self.base / path


def length_override(text: str) -> tuple[str, float]:
    source, _, seconds = text.rpartition("=")
    try:
        return source, float(seconds)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not SOURCE=SECONDS", param_hint="--length") from None


@click.command("sxml")
@click.argument("definition", type=click.File("r", encoding="utf-8"))
@click.option(
    "--length",
    "lengths",
    multiple=True,
    metavar="SOURCE=SECONDS",
    help="Length of an audio or video filename (or of a TTS text) instead of probing it; repeatable.",
)
def sxml(definition: IO[str], lengths: tuple[str, ...]) -> None:
    """Parse and time DEFINITION (a file, or - for stdin): print it annotated with
    resolved-start and resolved-duration; warnings and the movie's length go to stderr."""
    from dragon.errors import InvalidXMLError

    overrides = dict(length_override(text) for text in lengths)
    base = Path(definition.name).parent if definition.name not in ("<stdin>", "-") else Path.cwd()
    try:
        document = parse(definition.read())
        with tempfile.TemporaryDirectory(prefix="dragon-sxml-") as scratch:
            total = resolve(document.movie, SourceLengths(overrides, base, Path(scratch)))
    except InvalidXMLError as exc:
        raise click.ClickException(str(exc)) from None
    for warning in document.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(annotate(document.movie), nl=False)
    click.echo(f"duration: {total:.3f} s", err=True)
