"""Reading a video definition: safe XML parsing, fragment wrapping, widget desugaring and
validation against the SXML containment rules, attribute types and enums.

Anything wrong is an InvalidXMLError naming the source line; what is merely ignored (an
unknown attribute, a stray widget track) becomes a warning.
"""

from __future__ import annotations

import re

from lxml import etree

from dragon.errors import InvalidXMLError
from dragon.sxml import schema, widgets
from dragon.sxml.model import Document, Node

MAX_DEFINITION_BYTES = 2_000_000
MAX_ELEMENTS = 20_000
SERVICE = "craftsman-1.0"
_FIRST_ELEMENT = re.compile(r"\s*(?:<\?.*?\?>\s*|<!--.*?-->\s*)*<([A-Za-z_][\w.-]*)", re.DOTALL)
_DECLARATION = re.compile(r"\s*<\?xml.*?\?>", re.DOTALL)
_LXML_POSITION = re.compile(r", line \d+, column (\d+)$")


def parse(definition: str) -> Document:
    """The validated, desugared tree of ``definition`` and the warnings about it."""
    if len(definition.encode("utf-8", "surrogatepass")) > MAX_DEFINITION_BYTES:
        raise InvalidXMLError(f"line 1: the definition is larger than {MAX_DEFINITION_BYTES} bytes")
    root = _parse_xml(_wrap_fragment(definition))
    warnings: list[str] = []
    movie = _Builder(warnings).node(root)
    _link(movie, None)
    _Validator(warnings).check(movie)
    warnings.sort(key=lambda warning: int(warning.split(":", 1)[0].removeprefix("line ")))  # stable
    return Document(movie, warnings)


def _wrap_fragment(definition: str) -> str:
    """Wrap a fragment (Play.js embeds ``<effect/><transition/>...``) into a movie, on
    the first line so that line numbers stay those of the user's text."""
    first = _FIRST_ELEMENT.match(definition)
    if first is None or first.group(1) == "movie":
        return definition
    opening, closing = f'<movie service="{SERVICE}">', "</movie>"
    if first.group(1) != "body":
        opening, closing = opening + "<body>", "</body>" + closing
    declaration = _DECLARATION.match(definition)
    cut = declaration.end() if declaration else 0
    return definition[:cut] + opening + definition[cut:] + closing


def _parse_xml(text: str) -> etree._Element:
    parser = etree.XMLParser(
        encoding="utf-8",
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )
    try:
        root = etree.fromstring(text.encode("utf-8", "surrogatepass"), parser)
    except etree.XMLSyntaxError as exc:
        message = _LXML_POSITION.sub(r" (column \1)", exc.msg or "malformed XML")
        raise InvalidXMLError(f"line {exc.lineno or 1}: {message}") from None
    except ValueError as exc:  # e.g. an encoding declaration lxml refuses for text
        raise InvalidXMLError(f"line 1: {exc}") from None
    if root.getroottree().docinfo.internalDTD is not None or root.getroottree().docinfo.doctype:
        raise InvalidXMLError("line 1: DOCTYPE declarations are not allowed")
    return root


class _Builder:
    """lxml elements to Nodes, desugaring widgets and custom transitions on the way."""

    def __init__(self, warnings: list[str]):
        self.warnings = warnings
        self.count = 0

    def node(self, element: etree._Element) -> Node:
        self.count += 1
        if self.count > MAX_ELEMENTS:
            raise InvalidXMLError(f"line {element.sourceline}: the definition has more than {MAX_ELEMENTS} elements")
        tag = element.tag if isinstance(element.tag, str) else ""
        line = element.sourceline or 0
        if tag not in schema.KNOWN_TAGS:
            raise InvalidXMLError(f"line {line}: unknown element <{tag}>")
        if tag == "sphere":
            raise InvalidXMLError(f"line {line}: <sphere> is not supported")
        children = [self.node(child) for child in element if isinstance(child.tag, str)]
        texts = [element.text or ""] + [child.tail or "" for child in element]
        node = Node(tag, dict(element.attrib), children, "".join(texts).strip(), line)
        if node.text and tag not in schema.TEXT_CONTENT and tag not in ("track", "widget"):
            self.warnings.append(f"line {line}: <{tag}> ignores its text content")
            node.text = ""
        parent = element.getparent()
        if tag == "widget" and (parent is None or parent.tag != "transition"):
            if parent is not None and "widget" not in schema.CHILDREN.get(parent.tag, ()):
                raise node.error(f"is not allowed in <{parent.tag}>")
            return widgets.desugar(node, self.warnings)
        if tag == "transition" and node.attrs.get("type") == "custom":
            kinds = ", ".join(c.attrs.get("type", "?") for c in node.find("widget")) or "none"
            self.warnings.append(f"line {line}: custom transitions (widget {kinds}) are rendered as a crossfade")
            node.attrs["type"] = schema.DEFAULT_TRANSITION_TYPE
            node.children = []
        return node


def _link(node: Node, parent: Node | None) -> None:
    node.parent = parent
    for child in node.children:
        _link(child, node)


class _Validator:
    def __init__(self, warnings: list[str]):
        self.warnings = warnings

    def check(self, movie: Node) -> None:
        if movie.tag != "movie":
            raise movie.error("cannot be the root element (a definition is a <movie>)")
        self.walk(movie)
        bodies = movie.find("body")
        if len(bodies) != 1:
            raise movie.error(f"must hold exactly one <body>, not {len(bodies)}")
        if movie.children[-1] is not bodies[0] or len(movie.find("head")) > 1:
            raise movie.error("holds at most one <head>, then its <body>")
        if "service" not in movie.attrs:
            self.warnings.append(f"line {movie.line}: <movie> has no service attribute; read as {SERVICE}")

    def walk(self, node: Node) -> None:
        for child in node.children:
            if child.tag not in schema.CHILDREN.get(node.tag, ()):
                raise child.error(f"is not allowed in <{node.tag}>")
        self.attributes(node)
        getattr(self, f"check_{node.tag}", lambda _: None)(node)
        for child in node.children:
            self.walk(child)

    def attributes(self, node: Node) -> None:
        known = schema.ATTRIBUTES.get(node.tag, {})
        for name in node.attrs:
            kind = known.get(name)
            if kind is None:
                if node.tag not in schema.OPEN_ATTRIBUTES:
                    self.warnings.append(f"line {node.line}: <{node.tag}> ignores attribute '{name}'")
                continue
            _check_value(node, name, kind)
        required = schema.REQUIRED.get(node.tag)
        if required and required not in node.attrs:
            raise node.error(f"needs a '{required}' attribute")

    def check_body(self, node: Node) -> None:
        self.check_sequence(node)

    def check_sequence(self, node: Node) -> None:
        items = [c for c in node.children if c.tag not in schema.MODIFIERS]
        if not items:
            raise node.error("is empty")
        for index, child in enumerate(items):
            if child.tag != "transition":
                continue
            if index == 0 or index == len(items) - 1:
                raise child.error(
                    f"cannot {'start' if index == 0 else 'end'} a <{node.tag}>: a transition joins two items"
                )
            if items[index - 1].tag == "transition":
                raise child.error("follows another transition: a transition joins two items")

    def check_effect(self, node: Node) -> None:
        count = len(node.media())
        kind = node.attrs["type"]
        if kind in schema.SINGLE_MEDIA_EFFECTS and count > 1:
            raise node.error(f"of type '{kind}' takes one image or video, not {count}")
        if count > schema.MAX_EFFECT_MEDIA:
            raise node.error(f"takes at most {schema.MAX_EFFECT_MEDIA} images and videos, not {count}")

    def check_text(self, node: Node) -> None:
        if "type" not in node.attrs:
            self.warnings.append(f"line {node.line}: <text> has no type; read as '{schema.DEFAULT_TEXT_TYPE}'")

    def check_image(self, node: Node) -> None:
        if node.attrs.get("type") == "map":
            raise node.error("of type 'map' is not supported (maps need an external provider)")
        if not node.attrs.get("filename") and "color" not in node.attrs:
            raise node.error("needs a 'filename' or a 'color'")

    def check_video(self, node: Node) -> None:
        if not node.attrs.get("filename"):
            raise node.error("needs a 'filename'")

    def check_audio(self, node: Node) -> None:
        if node.attrs.get("filename"):
            if "voice" in node.attrs:
                self.warnings.append(f"line {node.line}: <audio> has a filename; its voice is ignored")
            return
        if not node.attrs.get("voice") or not node.text:
            raise node.error("needs a 'filename', or a 'voice' and the text to speak")

    def check_transition(self, node: Node) -> None:
        if node.children:
            raise node.children[0].error("is only allowed in a transition of type 'custom'")


def _check_value(node: Node, name: str, kind: object) -> None:
    value = node.attrs[name].strip()
    if isinstance(kind, tuple):
        if value not in kind:
            raise node.error(f"attribute '{name}' must be one of {', '.join(kind)}; not {value!r}")
    elif kind == "duration" and value == "..":
        return
    elif kind in ("duration", "seconds", "positive"):
        number = node.number(name, 0.0)
        if number < 0 or (kind == "positive" and number == 0):
            raise node.error(f"attribute '{name}' must be {'> 0' if kind == 'positive' else '>= 0'}, not {value!r}")
    elif kind == "number":
        node.number(name, 0.0)
    elif kind == "flag":
        node.flag(name, False)
    elif kind == "color":
        node.color(name, None)
    elif kind == "couple":
        node.couple(name, (0.0, 0.0))
    elif kind == "triplet":
        node.triplet(name, (0.0, 0.0, 0.0))
    elif kind == "box" and value != "auto":
        node.number(name, 0.0)
    elif kind == "direction" and value not in schema.DIRECTIONS:
        node.couple(name, (0.0, 0.0))
