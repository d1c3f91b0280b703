"""Parameter types several task types share, with the descriptions that /openapi.json and
docs/tasks.md show (one wording per concept)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

InputUrl = Annotated[
    str,
    Field(
        description="The input file: an http(s) URL, or the URL `dragon upload FILE` (POST /v2/storage/upload) gives "
        "for a local file.",
    ),
]
Width = Annotated[
    int | None, Field(description="Output width in pixels; given alone, the height follows the aspect ratio.")
]
Height = Annotated[
    int | None, Field(description="Output height in pixels; given alone, the width follows the aspect ratio.")
]
CellWidth = Annotated[int, Field(description="Width of each cell of the strip, in pixels.")]
CellHeight = Annotated[int, Field(description="Height of each cell of the strip, in pixels.")]
Crop = Annotated[
    bool,
    Field(
        description="With both width and height: fill the box and cut the centre out (true), or fit inside it keeping the "
        "aspect ratio (false).",
    ),
]
Wrap = Annotated[int | None, Field(description="Cells per row; unset: one row.")]
Poster = Annotated[bool, Field(description="Draw a play button over the centre of the picture.")]
Crf = Annotated[int, Field(description="H.264 constant rate factor: lower is better quality and larger (0 to 51).")]
Gop = Annotated[int, Field(description="Keyframe interval, in frames.")]
Title = Annotated[str, Field(description="Title of the published video.")]
Description = Annotated[str, Field(description="Description of the published video.")]
