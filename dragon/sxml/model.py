"""The SXML node tree the parser builds, the resolver times and the renderer reads.

Attributes stay as written (strings); the typed accessors convert them on demand and
name the source line when a value is bad, so every consumer reports errors the same way.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from dragon.errors import InvalidXMLError

COLOR = re.compile(r"#([0-9a-fA-F]{6}|[0-9a-fA-F]{8})")
PLACEMENT = ("top", "bottom", "left", "right", "width", "height")
MEDIA = ("image", "video")


def parse_color(text: str) -> tuple[int, int, int, int] | None:
    """``#RRGGBB`` or ``#RRGGBBAA`` as RGBA 0-255 (opaque when AA is absent), else None."""
    value = text.strip()
    if not COLOR.fullmatch(value):
        return None
    digits = value[1:] + ("" if len(value) == 9 else "ff")
    red, green, blue, alpha = (int(digits[i : i + 2], 16) for i in range(0, 8, 2))
    return red, green, blue, alpha


@dataclass(eq=False)
class Node:
    tag: str
    attrs: dict[str, str] = field(default_factory=dict)
    children: list[Node] = field(default_factory=list)
    text: str = ""  # character content, stripped (text, TTS audio)
    line: int = 0  # source line, for errors
    parent: Node | None = None
    start: float = 0.0  # absolute movie time in seconds, set by timing.resolve()
    duration: float = 0.0  # set by timing.resolve()

    def error(self, message: str) -> InvalidXMLError:
        """An InvalidXMLError about this node: ``line N: <tag> message``."""
        return InvalidXMLError(f"line {self.line}: <{self.tag}> {message}")

    def _bad(self, name: str, expected: str) -> InvalidXMLError:
        return self.error(f"attribute '{name}' must be {expected}, not {self.attrs[name]!r}")

    def number(self, name: str, default: float) -> float:
        if name not in self.attrs:
            return default
        try:
            value = float(self.attrs[name])
        except ValueError:
            raise self._bad(name, "a number") from None
        if not math.isfinite(value):
            raise self._bad(name, "a finite number")
        return value

    def flag(self, name: str, default: bool) -> bool:
        if name not in self.attrs:
            return default
        value = self.attrs[name].strip()
        if value not in ("true", "false"):
            raise self._bad(name, "'true' or 'false'")
        return value == "true"

    def color(self, name: str, default: str | None) -> tuple[int, int, int, int] | None:
        """``#RRGGBB`` or ``#RRGGBBAA`` as RGBA 0-255 (opaque when AA is absent)."""
        value = self.attrs.get(name, default)
        if value is None:
            return None
        rgba = parse_color(value)
        if rgba is None:
            if name in self.attrs:
                raise self._bad(name, "a colour #RRGGBB or #RRGGBBAA")
            raise ValueError(f"bad default colour {value!r}")
        return rgba

    def _floats(self, name: str, count: int, default: tuple[float, ...], expected: str) -> tuple[float, ...]:
        if name not in self.attrs:
            return default
        parts = self.attrs[name].split(",")
        try:
            values = tuple(float(p) for p in parts)
        except ValueError:
            raise self._bad(name, expected) from None
        if len(values) != count:
            raise self._bad(name, expected)
        return values

    def couple(self, name: str, default: tuple[float, float]) -> tuple[float, float]:
        return self._floats(name, 2, default, "two numbers 'x,y'")  # type: ignore[return-value]

    def triplet(self, name: str, default: tuple[float, float, float]) -> tuple[float, float, float]:
        return self._floats(name, 3, default, "three numbers 'x,y,z'")  # type: ignore[return-value]

    def placement(self) -> dict[str, float | None]:
        """The CSS-like box (fractions of the screen); absent or ``auto`` is None."""
        box: dict[str, float | None] = {}
        for name in PLACEMENT:
            raw = self.attrs.get(name, "auto").strip()
            box[name] = None if raw == "auto" else self.number(name, 0.0)
        return box

    def media(self) -> list[Node]:
        """The image and video children, in document order."""
        return [child for child in self.children if child.tag in MEDIA]

    def find(self, tag: str) -> list[Node]:
        """The direct children with this tag."""
        return [child for child in self.children if child.tag == tag]

    def walk(self) -> Iterator[Node]:
        """This node and all below it, in document order."""
        yield self
        for child in self.children:
            yield from child.walk()


@dataclass
class Document:
    movie: Node
    warnings: list[str] = field(default_factory=list)
