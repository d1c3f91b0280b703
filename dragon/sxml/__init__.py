"""SXML, the video description language of ``video.create``: parsing and validation
(parse), timing (timing), the annotated debugging view (annotate) and the output
profiles (profiles). Pure Python: no Ray, no media decoding."""

from dragon.sxml.annotate import annotate
from dragon.sxml.model import Document, Node
from dragon.sxml.parse import parse
from dragon.sxml.timing import resolve

__all__ = ["Document", "Node", "annotate", "parse", "resolve"]
