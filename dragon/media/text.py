"""Rasterising SXML ``<text>`` nodes into RGBA images with the free DejaVu fonts.

The renderer rasterises each text once per render and then moves it like an image (the
original's bitmap mode), so this module favours plain layout code over speed. Sizes are
SXML units: pixels of a 360-pixel-high frame, multiplied by ``scale`` (frame height / 360
times the supersampling factor), so a text covers the same share of the frame at every
profile and antialias setting. See docs/text.md for the choices made where the record is
silent.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, features

from dragon.errors import InvalidContentError, InvalidFontError

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")  # Debian's fonts-dejavu-core and -extra
# Raqm (with FriBiDi) shapes complex scripts and orders right-to-left text; the basic engine cannot.
LAYOUT = ImageFont.Layout.RAQM if features.check("raqm") else ImageFont.Layout.BASIC

# family -> (regular, bold, italic, bold italic)
FAMILIES: dict[str, tuple[str, str, str, str]] = {
    "sans": ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf"),
    "serif": ("DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSerif-BoldItalic.ttf"),
    "mono": (
        "DejaVuSansMono.ttf",
        "DejaVuSansMono-Bold.ttf",
        "DejaVuSansMono-Oblique.ttf",
        "DejaVuSansMono-BoldOblique.ttf",
    ),
}
# Font names (lower case, letters and digits only) -> (family, bold). The first nine are the
# names the old Stupeflix wiki listed; the others are generic names and `face` values.
FONT_NAMES: dict[str, tuple[str, bool]] = {
    "arial": ("sans", False),
    "arialbold": ("sans", True),
    "arialroundedmtbold": ("sans", True),
    "comicsansms": ("sans", False),
    "couriernew": ("mono", False),
    "landspeedrecord": ("sans", True),
    "saddlebag": ("serif", True),
    "timesnewroman": ("serif", False),
    "verdana": ("sans", False),
    "times": ("serif", False),
    "courier": ("mono", False),
    "helvetica": ("sans", False),
    "sans": ("sans", False),
    "sansserif": ("sans", False),
    "serif": ("serif", False),
    "mono": ("mono", False),
    "monospace": ("mono", False),
    "dejavusans": ("sans", False),
    "dejavuserif": ("serif", False),
    "dejavusansmono": ("mono", False),
}
BOLD_WEIGHTS = {"semibold", "demibold", "bold", "extrabold", "ultrabold", "black", "heavy"}
REGULAR_WEIGHTS = {"thin", "extralight", "ultralight", "light", "book", "normal", "regular", "medium"}
ITALIC_STYLES = {"italic", "oblique"}
UPRIGHT_STYLES = {"normal", "roman", "upright"}

HORIZONTAL = {"left": 0.0, "center": 0.5, "right": 1.0, "justify": 0.0}
VERTICAL = {"top": 0.0, "center": 0.5, "bottom": 1.0}
KINDS = ("zone", "legend", "advanced")

MAX_CHARACTERS = 10_000
MIN_PIXELS = 4  # the smallest size auto-sizing goes down to
AUTO_MAX_FONTSIZE = 96.0  # SXML units: the largest size auto-sizing picks
DEFAULT_FONTSIZE = 24.0  # SXML units: an advanced text without a fontsize
ZONE_MARGIN = 0.05  # of the box's smaller side, kept clear around a zone text
LEGEND_SIZE = 1 / 12  # of the box height: a legend's automatic font size
LEGEND_LINES = 2
LEGEND_SHRINK = 0.6  # a legend shrinks down to this share of its size to fit in two lines
LEGEND_BACKGROUND = (0, 0, 0, 160)
ELLIPSIS = "\u2026"
LINE_BREAK = re.compile(r"\\n|\r\n|\r|\n")  # the two characters backslash-n, or a real newline

RGBA = tuple[int, int, int, int]


@dataclass(frozen=True)
class Line:
    words: tuple[str, ...]
    _: KW_ONLY
    last: bool = True  # the last line of its paragraph: never stretched by justify
    cut: bool = False  # holds a piece of a word too wide for a line

    @property
    def text(self) -> str:
        return " ".join(self.words)


@dataclass(frozen=True)
class Block:
    """Lines laid out in one font, with the distance between them."""

    lines: list[Line]
    font: ImageFont.FreeTypeFont
    advance: float  # from one line's top to the next

    @property
    def height(self) -> float:
        ascent, descent = self.font.getmetrics()
        return (len(self.lines) - 1) * self.advance + ascent + descent if self.lines else 0.0


@dataclass(frozen=True, kw_only=True)
class TextStyle:
    """How a text is laid out and drawn: SXML's ``<text>`` attributes. ``kind`` is its
    ``type``; ``fontsize`` is in SXML units, None meaning automatic; ``interlign``
    multiplies the font's line height."""

    kind: str = "zone"
    fontname: str | None = None
    fontsize: float | None = None
    color: RGBA = (255, 255, 255, 255)
    background: RGBA | None = None
    align: str = "center,center"
    wrap: bool = True
    reference: str | None = None
    weight: str | None = None
    style: str | None = None
    interlign: float | None = None


def render_text(
    content: str, size: tuple[int, int], style: TextStyle = TextStyle(), *, scale: float = 1.0
) -> np.ndarray:
    """The text as a (height, width, 4) uint8 RGBA array with straight (not premultiplied) alpha.

    ``size`` (width, height) is the text's box in output pixels.
    """
    if style.kind not in KINDS:
        raise InvalidContentError(f"text type '{style.kind}' is not one of {', '.join(KINDS)}")
    if len(content) > MAX_CHARACTERS:
        raise InvalidContentError(f"a text has at most {MAX_CHARACTERS} characters")
    if style.fontsize is not None and not 0 < style.fontsize <= 1000:
        raise InvalidContentError(f"fontsize {style.fontsize} is not between 0 and 1000")
    if style.interlign is not None and not 0 < style.interlign <= 10:
        raise InvalidContentError(f"interlign {style.interlign} is not between 0 and 10")
    file = font_file(style.fontname, style.weight, style.style)
    h, v = parse_align(style.align)
    width, height = size
    if width < 1 or height < 1:
        return np.zeros((max(height, 0), max(width, 0), 4), dtype=np.uint8)
    paragraphs = [part.split() for part in LINE_BREAK.split(content.strip())]
    pixels = None if style.fontsize is None else min(height, max(1, round(style.fontsize * scale)))
    spacing = style.interlign or 1.0
    canvas = Image.new("RGBA", (width, height), (0, 0, 0, 0))
    mask = Image.new("L", (width, height), 0)
    if style.kind == "zone":
        margin = round(ZONE_MARGIN * min(width, height))
        inner = (max(1, width - 2 * margin), max(1, height - 2 * margin))
        block = zone_block(paragraphs, file, inner, pixels, spacing, round(AUTO_MAX_FONTSIZE * scale), wrap=style.wrap)
        if style.background:
            ImageDraw.Draw(canvas).rectangle((0, 0, width, height), fill=style.background)
        top = margin + (inner[1] - block.height) * VERTICAL[v]
        draw_block(mask, block, margin, top, inner[0], h)
    elif style.kind == "legend":
        font_pixels = pixels or max(1, round(height * LEGEND_SIZE))
        legend(
            canvas,
            mask,
            paragraphs,
            file,
            font_pixels,
            spacing,
            style.background or LEGEND_BACKGROUND,
            h,
            v,
            wrap=style.wrap,
        )
    else:
        font_pixels = pixels or min(height, max(1, round(DEFAULT_FONTSIZE * scale)))
        advanced(canvas, mask, paragraphs, style.reference, file, font_pixels, spacing, style.background, h, v)
    ink = Image.new("RGBA", (width, height), style.color[:3] + (0,))
    ink.putalpha(mask.point(lambda level: level * style.color[3] // 255))
    return np.array(Image.alpha_composite(canvas, ink))


def font_file(fontname: str | None, weight: str | None, style: str | None) -> str:
    """The DejaVu file standing for a font name, weight and style (each case-insensitive)."""
    key = re.sub(r"[^a-z0-9]", "", (fontname or "arial").lower())
    if key not in FONT_NAMES:
        raise InvalidFontError(f"font '{fontname}' is not available; choose one of: {', '.join(FONT_NAMES)}")
    family, bold = FONT_NAMES[key]
    word = (weight or "normal").strip().lower()
    if word.isdigit():
        bold = bold or int(word) >= 600
    elif word in BOLD_WEIGHTS:
        bold = True
    elif word not in REGULAR_WEIGHTS:
        choices = ", ".join(sorted(BOLD_WEIGHTS | REGULAR_WEIGHTS))
        raise InvalidFontError(f"weight '{weight}' is not a number or one of: {choices}")
    slant = (style or "normal").strip().lower()
    if slant not in ITALIC_STYLES | UPRIGHT_STYLES:
        raise InvalidFontError(f"style '{style}' is not one of: {', '.join(sorted(ITALIC_STYLES | UPRIGHT_STYLES))}")
    return FAMILIES[family][int(bold) + 2 * (slant in ITALIC_STYLES)]


def parse_align(align: str) -> tuple[str, str]:
    """(horizontal, vertical) from ``left|right|center|top|bottom|justify`` or ``h,v``
    (``v,h`` is taken too when it cannot be misread)."""
    parts = [part.strip().lower() for part in align.split(",")]
    if len(parts) == 1 and parts[0] in HORIZONTAL:
        return parts[0], "center"
    if len(parts) == 1 and parts[0] in VERTICAL:
        return "center", parts[0]
    if len(parts) == 2 and parts[0] in HORIZONTAL and parts[1] in VERTICAL:
        return parts[0], parts[1]
    if len(parts) == 2 and parts[0] in ("top", "bottom") and parts[1] in HORIZONTAL:
        return parts[1], parts[0]
    raise InvalidContentError(f"align '{align}' is not one of left, right, center, top, bottom, justify, or 'h,v'")


@functools.lru_cache(maxsize=256)
def load_font(file: str, pixels: int) -> ImageFont.FreeTypeFont:
    path = FONT_DIR / file
    try:
        return ImageFont.truetype(str(path), pixels, layout_engine=LAYOUT)
    except OSError:
        raise InvalidFontError(
            f"the font file {file} is not installed on this worker (Debian fonts-dejavu-core and fonts-dejavu-extra)"
        ) from None


def make_block(lines: list[Line], file: str, pixels: int, spacing: float) -> Block:
    font = load_font(file, pixels)
    ascent, descent = font.getmetrics()
    return Block(lines, font, (ascent + descent) * spacing)


def layout_lines(paragraphs: list[list[str]], font: ImageFont.FreeTypeFont, width: float, *, wrap: bool) -> list[Line]:
    """One line per paragraph, or, with ``wrap``, greedy word wrap within ``width``, a word
    wider than that being cut between characters."""
    if not wrap:
        return [Line(tuple(words)) for words in paragraphs]
    lines: list[Line] = []
    space = font.getlength(" ")
    for words in paragraphs:
        current: list[str] = []
        used, cut = 0.0, False  # the current line's width (words plus spaces), and whether it ends a cut word
        for word in words:
            size = font.getlength(word)
            if current and used + space + size <= width:
                current.append(word)
                used += space + size
                continue
            if current:
                lines.append(Line(tuple(current), last=False, cut=cut))
            current, used, cut = [word], size, False
            if size > width:
                *pieces, tail = split_characters(word, font, width)
                lines.extend(Line((piece,), last=False, cut=True) for piece in pieces)
                current, used, cut = [tail], font.getlength(tail), True
        lines.append(Line(tuple(current), cut=cut))
    return lines


def split_characters(word: str, font: ImageFont.FreeTypeFont, width: float) -> list[str]:
    """``word`` in pieces no wider than ``width`` (at least one character each)."""
    pieces = []
    while word:
        cut = max(1, fitting_start(word, font, width))
        pieces.append(word[:cut])
        word = word[cut:]
    return pieces


def fitting_start(text: str, font: ImageFont.FreeTypeFont, width: float, suffix: str = "") -> int:
    """The length of the longest start of ``text`` that, right-stripped and followed by
    ``suffix``, is no wider than ``width``."""
    return largest(0, len(text), lambda n: font.getlength(text[:n].rstrip() + suffix) <= width)


def largest(low: int, high: int, fits: Callable[[int], bool]) -> int:
    """The largest n in [low, high] with ``fits(n)``, by bisection (once false, false above);
    ``low`` when none fits."""
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


def ellipsize(text: str, font: ImageFont.FreeTypeFont, width: float) -> str:
    """``text``, or its longest start followed by an ellipsis, no wider than ``width``."""
    if font.getlength(text) <= width:
        return text
    fit = fitting_start(text, font, width, ELLIPSIS)
    return text[:fit].rstrip() + ELLIPSIS if fit or font.getlength(ELLIPSIS) <= width else ""


def zone_block(
    paragraphs: list[list[str]],
    file: str,
    box: tuple[int, int],
    pixels: int | None,
    spacing: float,
    cap: int,
    *,
    wrap: bool,
) -> Block:
    """A zone's lines: at ``pixels``, or at the largest size up to ``cap`` where they fit the box
    without cutting a word (bisection: a larger size never fits better)."""
    width, height = box

    def layout(size: int) -> Block:
        return make_block(layout_lines(paragraphs, load_font(file, size), width, wrap=wrap), file, size, spacing)

    def fits(size: int) -> bool:
        block = layout(size)
        lines = block.lines
        return (
            block.height <= height
            and not any(line.cut for line in lines)
            and (wrap or all(block.font.getlength(line.text) <= width for line in lines))
        )

    if pixels is None:
        pixels = largest(MIN_PIXELS, max(MIN_PIXELS, min(cap, height)), fits)
    return layout(pixels)


def legend(
    canvas: Image.Image,
    mask: Image.Image,
    paragraphs: list[list[str]],
    file: str,
    pixels: int,
    spacing: float,
    background: RGBA,
    h: str,
    v: str,
    *,
    wrap: bool,
) -> None:
    """A caption: at most two lines on a band across the bottom (or the top, for ``v`` top);
    no band for a caption with no words."""
    if not any(paragraphs):
        return
    width, height = canvas.size
    margin = round(ZONE_MARGIN * width)
    inner = max(1, width - 2 * margin)

    def fits(size: int) -> bool:
        return len(layout_lines(paragraphs, load_font(file, size), inner, wrap=wrap)) <= LEGEND_LINES

    size = largest(min(pixels, max(MIN_PIXELS, round(pixels * LEGEND_SHRINK))), pixels, fits)
    font = load_font(file, size)
    lines = layout_lines(paragraphs, font, inner, wrap=wrap)
    if len(lines) > LEGEND_LINES:
        kept = lines[: LEGEND_LINES - 1]
        rest = " ".join(line.text for line in lines[LEGEND_LINES - 1 :])
        lines = [*kept, Line((ellipsize(rest, font, inner),))]
    lines = [
        Line((ellipsize(line.text, font, inner),), last=line.last) if font.getlength(line.text) > inner else line
        for line in lines
    ]
    block = make_block(lines, file, size, spacing)
    pad = round(0.4 * block.advance)
    band = min(height, round(block.height) + 2 * pad)
    top = 0 if v == "top" else height - band
    ImageDraw.Draw(canvas).rectangle((0, top, width, top + band - 1), fill=background)
    draw_block(mask, block, margin, top + (band - block.height) / 2, inner, h)


def advanced(
    canvas: Image.Image,
    mask: Image.Image,
    paragraphs: list[list[str]],
    reference: str | None,
    file: str,
    pixels: int,
    spacing: float,
    background: RGBA | None,
    h: str,
    v: str,
) -> None:
    """A text in the box its ``reference`` measures: one reference line cuts the text with an
    ellipsis, n lines wrap it (words, then characters) to at most n lines. The box sits at
    the centre of the canvas and moves to its edges with ``align``."""
    font = load_font(file, pixels)
    references = LINE_BREAK.split(reference.strip("\n")) if reference else [" ".join(w) for w in paragraphs]
    width = max(1.0, max(font.getlength(line) for line in references))
    words = [word for paragraph in paragraphs for word in paragraph]
    if len(references) == 1:
        lines = [Line((ellipsize(" ".join(words), font, width),))]
    else:
        lines = layout_lines(paragraphs, font, width, wrap=True)
        if len(lines) > len(references):
            last = lines[len(references) - 1]
            cut = ellipsize(last.text + ELLIPSIS, font, width)  # the ellipsis says text follows
            lines = [*lines[: len(references) - 1], Line((cut,))]
    block = make_block(lines, file, pixels, spacing)
    box_height = (len(references) - 1) * block.advance + sum(font.getmetrics())
    left = (canvas.width - width) * (0.5 if h == "justify" else HORIZONTAL[h])
    top = (canvas.height - box_height) * VERTICAL[v]
    if background:
        ImageDraw.Draw(canvas).rectangle((left, top, left + width, top + box_height), fill=background)
    draw_block(mask, block, left, top, width, h)


def draw_block(mask: Image.Image, block: Block, left: float, top: float, width: float, h: str) -> None:
    """Draw each line into ``mask``, aligned within ``width`` from ``left``; justified lines
    (all but a paragraph's last) spread their words over the whole width."""
    draw = ImageDraw.Draw(mask)
    ascent, descent = block.font.getmetrics()
    for index, line in enumerate(block.lines):
        y = top + index * block.advance
        if y > mask.height or y + ascent + descent < 0:
            continue
        if h == "justify" and not line.last and len(line.words) > 1:
            widths = [block.font.getlength(word) for word in line.words]
            gap = (width - sum(widths)) / (len(line.words) - 1)
            x = left
            for word, word_width in zip(line.words, widths):
                draw.text((x, y), word, font=block.font, fill=255, anchor="la")
                x += word_width + gap
            continue
        x = left + (width - block.font.getlength(line.text)) * HORIZONTAL[h]
        text, x = visible_part(line.text, block.font, x, mask.width)
        draw.text((x, y), text, font=block.font, fill=255, anchor="la")


def visible_part(text: str, font: ImageFont.FreeTypeFont, x: float, limit: int) -> tuple[str, float]:
    """The characters of a line starting at ``x`` that can show in [0, limit), and where they
    start. Pillow rasterises a whole string at once: a long unwrapped line at a large size
    would otherwise take gigabytes. Kerning is ignored at the cut, one character of slack kept."""
    if x >= -font.size and x + font.getlength(text) <= limit + font.size:
        return text, x
    start, end, position = 0, len(text), x
    for index, char in enumerate(text):
        advance = font.getlength(char)
        if position + advance < -font.size:
            start, x = index + 1, position + advance
        if position > limit + font.size:
            end = index
            break
        position += advance
    return text[start:end], x
