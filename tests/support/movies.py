"""A movie whose frames say where they came from, for the tests of segmented rendering."""

from __future__ import annotations

from pathlib import Path

import av

# Red, green, then blue, 4 s each: three of the test service's 5 s segments, and a join
# that lost, repeated or reordered frames shows in the colours of the frames.
THREE_COLOURS = "".join(
    f'<effect type="none" duration="4"><image color="{colour}"/></effect>'
    for colour in ("#ff0000", "#00ff00", "#0000ff")
)


def dominant_colours(path: Path) -> list[int]:
    """Per frame, the strongest channel (0 red, 1 green, 2 blue) at a point near the centre
    of the smallest profiles' frames."""
    with av.open(str(path)) as container:
        centres = [frame.to_ndarray(format="rgb24")[72, 88].tolist() for frame in container.decode(video=0)]
    return [max(range(3), key=lambda channel: rgb[channel]) for rgb in centres]
