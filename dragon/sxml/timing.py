"""When every node plays: the SXML timing rules (docs/sxml.md, "Timing").

Two passes. Bottom-up, each node gets an *intrinsic* duration or none: an explicit
``duration``, a media length, a sequence's sum, a stack's longest child. Top-down, each
node gets its absolute ``start`` and its ``duration``: a node without an intrinsic
duration fills the time its parent gives it (less its margins), and nothing plays past
its parent's end (children are truncated, never squeezed).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from dragon.sxml import schema
from dragon.sxml.model import Node

DEFAULT_SECONDS = 5.0  # an item with no duration anywhere (effects.rst: 5.0)
MAX_MOVIE_SECONDS = 3 * 3600.0
TIMED = frozenset(
    {
        "body",
        "sequence",
        "stack",
        "effect",
        "text",
        "overlay",
        "audio",
        "transition",
        "filter",
        "animator",
        "camera",
        "image",
        "video",
    }
)
SEQUENCES = frozenset({"body", "sequence"})
HOSTS = frozenset({"effect", "overlay", "filter"})  # hold media that share the host's time
MODIFIERS = frozenset({"filter", "animator", "camera"})  # timed relative to their host, never time it


@dataclass(frozen=True)
class Times:
    """A node's time attributes, checked: margins are None when absent."""

    duration: float | None
    slave: bool  # duration=".."
    margin_start: float | None
    margin_end: float | None

    @property
    def margins(self) -> float:
        return (self.margin_start or 0.0) + (self.margin_end or 0.0)


def times(node: Node) -> Times:
    """The time attributes of ``node``; contradictory or negative ones are InvalidXMLError."""

    def seconds(name: str) -> float | None:
        if name not in node.attrs:
            return None
        value = node.number(name, 0.0)
        if value < 0:
            raise node.error(f"attribute '{name}' must be >= 0, not {node.attrs[name]!r}")
        return value

    slave = node.attrs.get("duration", "").strip() == ".."
    duration = None if slave else seconds("duration")
    start, margin_start, margin_end, both = (seconds(n) for n in ("start", "margin-start", "margin-end", "margin-both"))
    if start is not None:
        if margin_start is not None:
            raise node.error("cannot have both 'start' and 'margin-start'")
        margin_start = start
    if both is not None:
        if duration is not None:
            raise node.error("cannot have both 'margin-both' and 'duration'")
        if margin_start is not None or margin_end is not None:
            raise node.error("cannot have 'margin-both' with 'margin-start' or 'margin-end'")
        margin_start = margin_end = both
    if duration is not None and margin_start is not None and margin_end is not None:
        raise node.error("cannot have 'duration', 'margin-start' and 'margin-end' together")
    return Times(duration, slave, margin_start, margin_end)


def resolve(movie: Node, media_length: Callable[[Node], float | None]) -> float:
    """Set ``start`` and ``duration`` on every timed node; return the movie's length.

    ``media_length(node)`` gives the source length in seconds of an ``<audio>`` (file or
    speech) or a ``<video>``, or None when unknown; skip and speed are applied here.
    """
    return _Resolver(media_length).movie(movie)


class _Resolver:
    def __init__(self, media_length: Callable[[Node], float | None]):
        self.media_length = media_length
        self.known: dict[Node, float | None] = {}

    def movie(self, movie: Node) -> float:
        body = movie.find("body")[0]
        natural = self.intrinsic(body)
        if natural is None:  # nothing anywhere says how long: every item lasts the default
            natural = self.sequence_length(body, DEFAULT_SECONDS)
        assert natural is not None  # with a default, every sequence has a length
        self.assign(body, 0.0, natural, natural)
        if body.duration <= 0:
            raise body.error("lasts 0 seconds: the movie is empty")
        if body.duration > MAX_MOVIE_SECONDS:
            raise body.error(f"lasts {body.duration:.3f} seconds, more than the limit of {MAX_MOVIE_SECONDS:.0f}")
        return body.duration

    # -- bottom-up: intrinsic durations -------------------------------------------------

    def intrinsic(self, node: Node) -> float | None:
        if node not in self.known:
            self.known[node] = self._intrinsic(node)
        return self.known[node]

    def _intrinsic(self, node: Node) -> float | None:
        own = times(node)
        if own.duration is not None:
            return own.duration
        if own.slave or node.tag in MODIFIERS:
            return None
        if node.tag in ("audio", "video"):
            return self.source(node)
        if node.tag in SEQUENCES:
            return self.sequence_length(node, None)
        if node.tag in ("stack", "effect", "overlay"):
            return self.longest(node)
        return None  # text, image, transition: from their context

    def source(self, node: Node) -> float | None:
        """(length - skip) / speed of an audio or video source, None when unknown."""
        length = self.media_length(node)
        if length is None:
            return None
        skip = node.number("skip", 0.0)
        if skip >= length:
            raise node.error(f"skips {skip:g} s of a source that lasts {length:.3f} s")
        return (length - skip) / node.number("speed", 1.0)

    def longest(self, node: Node) -> float | None:
        """A stack's (or a media host's) length: its longest child that has one.

        Media share a host's time equally, so a host of n media lasts n times the
        longest of them. A child placed with margins counts (as margins + length) only
        when no child without margins has a length: margins place a child in a
        container whose length is fixed by the others (tutorial 06: a stack fixed at
        15 s by its effect cuts a longer song that has margin-both="2").
        """
        plain: list[float] = []
        margined: list[float] = []
        media = [m for m in self.media(node) if self.intrinsic(m) is not None]
        if media:
            plain.append(len(self.media(node)) * max(self.intrinsic(m) or 0.0 for m in media))
        for child in self.timed_children(node):
            length = self.intrinsic(child)
            own = times(child)
            if length is None:
                continue
            if own.margin_start is None and own.margin_end is None:
                plain.append(length)
            else:
                margined.append(length + own.margins)
        lengths = plain or margined
        return max(lengths) if lengths else None

    def sequence_length(self, node: Node, default: float | None) -> float | None:
        """Items end to end, less the transitions; an item with no length counts as
        ``default`` (None: the sequence has no length of its own if all items lack one)."""
        items = [c for c in self.timed_children(node) if c.tag != "transition"]
        lengths = [self.intrinsic(item) for item in items]
        if default is None:
            if all(length is None for length in lengths):
                return None
            default = DEFAULT_SECONDS
        total = sum(
            (default if length is None else length) + times(item).margins for item, length in zip(items, lengths)
        )
        return total - sum(_transition_length(t) for t in node.find("transition"))

    # -- top-down: absolute starts and durations ----------------------------------------

    def assign(self, node: Node, start: float, natural: float, limit: float) -> None:
        """Place ``node`` at ``start`` for ``natural`` seconds, cut at ``limit``."""
        node.start = start
        node.duration = max(0.0, min(natural, limit - start))
        inner = min(limit, start + natural)
        if node.tag in SEQUENCES:
            self.lay_sequence(node, natural, inner)
        media = self.media(node)
        for index, medium in enumerate(media):
            share = natural / len(media)
            self.assign(medium, start + index * share, share, inner)
        for child in node.children:
            if child.tag in TIMED and child not in media and (node.tag not in SEQUENCES or child.tag in MODIFIERS):
                self.lay_within(child, start, natural, inner)

    def lay_within(self, child: Node, start: float, length: float, limit: float) -> None:
        """A child that plays alongside its parent's others (stack-like), margins applied."""
        own = times(child)
        natural = self.intrinsic(child)
        if natural is None:
            natural, offset = length - own.margins, own.margin_start or 0.0
        elif own.margin_start is None and own.margin_end is not None:  # pinned to the end
            offset = max(0.0, length - own.margin_end - natural)
        else:
            offset = own.margin_start or 0.0
        end = min(limit, start + length - (own.margin_end or 0.0))
        self.assign(child, start + offset, max(0.0, natural), end)

    def lay_sequence(self, node: Node, length: float, limit: float) -> None:
        items = [c for c in self.timed_children(node) if c.tag != "transition"]
        naturals = {item: self.intrinsic(item) for item in items}
        share = DEFAULT_SECONDS
        if all(n is None for n in naturals.values()):  # the sequence's time is shared out evenly
            transitions = sum(_transition_length(t) for t in node.find("transition"))
            share = max(0.0, (length + transitions - sum(times(i).margins for i in items)) / len(items))
        cursor = node.start
        previous: tuple[Node, float] | None = None
        pending: Node | None = None
        for child in self.timed_children(node):
            if child.tag == "transition":
                pending = child
                continue
            natural = naturals[child]
            natural = share if natural is None else natural
            own = times(child)
            slot = own.margins + natural
            item_start = cursor
            if pending is not None and previous is not None:
                overlap = _transition_length(pending)
                for neighbour, neighbour_slot in (previous, (child, slot)):
                    if overlap > neighbour_slot:
                        raise pending.error(
                            f"lasts {overlap:g} s, longer than the <{neighbour.tag}> of line "
                            f"{neighbour.line} ({neighbour_slot:.3f} s)"
                        )
                item_start = cursor - overlap
                self.assign(pending, item_start, overlap, limit)
            self.assign(child, item_start + (own.margin_start or 0.0), max(0.0, natural), limit)
            cursor = item_start + slot
            previous, pending = (child, slot), None

    @staticmethod
    def media(node: Node) -> list[Node]:
        return node.media() if node.tag in HOSTS else []

    @staticmethod
    def timed_children(node: Node) -> list[Node]:
        """Children that take part in ``node``'s own time (not modifiers, not media)."""
        return [
            c for c in node.children if c.tag in TIMED and c.tag not in MODIFIERS and c.tag not in ("image", "video")
        ]


def _transition_length(node: Node) -> float:
    return node.number("duration", schema.DEFAULT_TRANSITION_DURATION)
