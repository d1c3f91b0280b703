"""Studio theme widgets, desugared into plain SXML.

Widgets were black boxes rendered from proprietary After Effects templates. Clients that
send ``director.theme.*`` still get a video: a slideshow of the theme's video track
(kenburns images with their captions as legends, texts as title cards, crossfades in
between) over the theme's audio track. Any other widget is refused.
"""

from __future__ import annotations

from dragon.sxml.model import Node

THEME_PREFIX = "director.theme."
ITEM_SECONDS = "4.0"  # a theme item without a duration
TRANSITION_SECONDS = "1.0"
PLATE_COLOR = "#1a1a1a"  # behind title cards


def desugar(widget: Node, warnings: list[str]) -> Node:
    """The plain SXML subtree standing for ``widget`` (parents are linked by the caller)."""
    kind = widget.attrs.get("type", "")
    if not kind.startswith(THEME_PREFIX):
        raise widget.error(f"type {kind!r} is not supported (only director.theme.* is rendered, as a slideshow)")
    items: list[Node] = []
    audios: list[Node] = []
    for child in widget.children:
        track = child.attrs.get("type") if child.tag == "track" else None
        if track == "video":
            items += [item for entry in child.children if (item := _item(entry, warnings)) is not None]
        elif track == "audio":
            audios += child.find("audio")
            _ignore([c for c in child.children if c.tag != "audio"], warnings)
        else:
            _ignore([child], warnings)
    if not items:
        raise widget.error('has no image, video or text in a <track type="video">')
    sequence = Node("sequence", {}, _with_transitions(items, widget.line), line=widget.line)
    if not audios:
        return sequence
    for audio in audios:
        audio.attrs.pop("duration", None)
    if len(audios) == 1:
        audio_part = audios[0]
        audio_part.attrs["duration"] = ".."
    else:
        audio_part = Node("sequence", {"duration": ".."}, audios, line=audios[0].line)
    return Node("stack", {}, [sequence, audio_part], line=widget.line)


def _ignore(nodes: list[Node], warnings: list[str]) -> None:
    for node in nodes:
        what = f'<{node.tag} type="{node.attrs["type"]}">' if "type" in node.attrs else f"<{node.tag}>"
        warnings.append(f"line {node.line}: {what} in a widget is ignored")


def _item(entry: Node, warnings: list[str]) -> Node | None:
    line = entry.line
    if entry.tag == "image":
        if entry.attrs.get("type") == "map":
            warnings.append(f"line {line}: map images are not supported; the widget skips it")
            return None
        captions = [c for c in entry.children if c.tag == "track" and c.attrs.get("type") == "caption"]
        entry.children = [c for c in entry.children if c not in captions]
        seconds = entry.attrs.pop("duration", ITEM_SECONDS)
        effect = Node("effect", {"type": "kenburns", "duration": seconds}, [entry], line=line)
        texts = [text for caption in captions for text in caption.find("text")]
        if not texts:
            return effect
        legends = [_text(text, "legend", "..") for text in texts]
        return Node("stack", {}, [effect, *legends], line=line)
    if entry.tag == "video":
        return Node("effect", {"type": "none"}, [entry], line=line)
    if entry.tag == "text":
        seconds = entry.attrs.pop("duration", ITEM_SECONDS)
        plate = Node("effect", {"type": "none"}, [Node("image", {"color": PLATE_COLOR}, line=line)], line=line)
        return Node("stack", {"duration": seconds}, [plate, _text(entry, "zone", None)], line=line)
    _ignore([entry], warnings)
    return None


def _text(text: Node, kind: str, duration: str | None) -> Node:
    """A theme text as a plain text node; the themes' literal ``\\n`` are line breaks."""
    text.attrs.setdefault("type", kind)
    if duration:
        text.attrs["duration"] = duration
    text.text = text.text.replace("\\n", "\n")
    return text


def _with_transitions(items: list[Node], line: int) -> list[Node]:
    joined: list[Node] = []
    for item in items:
        if joined:
            joined.append(Node("transition", {"type": "crossfade", "duration": TRANSITION_SECONDS}, line=line))
        joined.append(item)
    return joined
