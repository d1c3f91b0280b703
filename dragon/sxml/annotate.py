"""The resolved tree written back as SXML, each timed node carrying when it plays.

Stupeflix offered such a debugging view (the XML annotated with computed durations);
``dragon sxml`` prints it, and the renderer can log it.
"""

from __future__ import annotations

from lxml import etree

from dragon.sxml.model import Node
from dragon.sxml.timing import TIMED


def annotate(movie: Node) -> str:
    """Pretty SXML of ``movie`` (desugared) with ``resolved-start`` and
    ``resolved-duration`` (seconds, 3 decimals) on every timed node."""
    return etree.tostring(_element(movie), pretty_print=True, encoding="unicode")


def _element(node: Node) -> etree._Element:
    element = etree.Element(node.tag, node.attrs)
    if node.tag in TIMED:
        element.set("resolved-start", f"{node.start:.3f}")
        element.set("resolved-duration", f"{node.duration:.3f}")
    element.text = node.text or None
    element.extend(_element(child) for child in node.children)
    return element
