"""Text rasterisation (dragon.media.text), asserted on the pixels it draws."""

from __future__ import annotations

import numpy as np
import pytest

from dragon.errors import InvalidContentError, InvalidFontError
from dragon.media.text import TextStyle, render_text

W, H = 640, 360
LONG = "The quick brown fox jumps over the lazy dog and keeps running through the whole field " * 3


def ink(image: np.ndarray) -> np.ndarray:
    """Where text was drawn on a transparent box."""
    return image[..., 3] > 0


def bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def bands(mask: np.ndarray) -> list[tuple[int, int]]:
    """Runs of rows holding ink: one per line of text."""
    rows = np.concatenate(([False], mask.any(axis=1), [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(rows))
    return list(zip(edges[::2].tolist(), edges[1::2].tolist()))


def text(content: str, kind: str, size: tuple[int, int] = (W, H), scale: float = 1.0, **style) -> np.ndarray:
    return render_text(content, size, TextStyle(kind=kind, **style), scale=scale)


def zone(content: str, **options) -> np.ndarray:
    return text(content, "zone", **options)


def test_output_is_the_box_as_straight_alpha_rgba() -> None:
    image = zone("Hello", color=(255, 0, 0, 128))
    assert image.shape == (H, W, 4) and image.dtype == np.uint8
    drawn = image[ink(image)]
    assert (drawn[:, :3] == (255, 0, 0)).all()  # colour not multiplied by coverage
    assert drawn[:, 3].max() == 128 and drawn[:, 3].min() > 0


def test_top_left_align_puts_the_text_in_the_top_left_quadrant() -> None:
    mask = ink(zone("Top left", align="left,top", fontsize=30))
    assert mask[: H // 2, : W // 2].any()
    assert not mask[H // 2 :, :].any() and not mask[:, W // 2 :].any()


@pytest.mark.parametrize(
    "align, corner", [("right,bottom", (1, 1)), ("bottom,right", (1, 1)), ("top", (None, 0)), ("left", (0, None))]
)
def test_alignment_moves_the_text_to_that_side(align: str, corner: tuple[int | None, int | None]) -> None:
    left, top, right, bottom = bbox(ink(zone("Aligned", align=align, fontsize=30)))
    middle_x, middle_y = (left + right) / 2, (top + bottom) / 2
    expected_x = {0: middle_x < W / 3, 1: middle_x > 2 * W / 3, None: abs(middle_x - W / 2) < 5}
    expected_y = {0: middle_y < H / 3, 1: middle_y > 2 * H / 3, None: abs(middle_y - H / 2) < 10}
    assert expected_x[corner[0]] and expected_y[corner[1]]


def test_auto_size_makes_a_short_text_larger_than_a_long_one() -> None:
    short, long = ink(zone("Hello World")), ink(zone(LONG))
    (short_band,), long_bands = bands(short), bands(long)
    assert len(long_bands) >= 4
    short_height = short_band[1] - short_band[0]
    assert short_height > 2 * max(end - start for start, end in long_bands)
    left, _, right, _ = bbox(short)
    assert right - left > 0.75 * W  # the two words span most of the box


def test_auto_size_fills_the_box_without_overflowing_it() -> None:
    left, top, right, bottom = bbox(ink(zone(LONG)))
    assert left > 0 and top > 0 and right < W and bottom < H
    assert bottom - top > 0.6 * H  # as large as the box allows, not timid


def test_wrap_keeps_all_ink_inside_the_box_and_no_wrap_overflows() -> None:
    wrapped = ink(zone(LONG, fontsize=28))
    left, top, right, bottom = bbox(wrapped)
    assert left > 0 and right < W and top > 0 and bottom < H
    assert len(bands(wrapped)) > 3
    single = ink(zone(LONG, fontsize=28, wrap=False))
    assert len(bands(single)) == 1
    assert single[:, 0].any() and single[:, -1].any()  # cut by both sides of the box


def test_an_over_long_word_is_cut_between_characters() -> None:
    mask = ink(zone("W" * 60, fontsize=40))
    assert len(bands(mask)) >= 2
    left, _, right, _ = bbox(mask)
    assert left > 0 and right < W


def test_background_fills_the_box() -> None:
    image = zone("Hi", background=(10, 20, 30, 255), color=(250, 250, 250, 255))
    assert (image[..., 3] == 255).all()
    assert (image[0, 0] == (10, 20, 30, 255)).all() and (image[-1, -1] == (10, 20, 30, 255)).all()
    assert (image[..., 0] > 200).any()  # the text over it


def test_literal_backslash_n_and_newlines_break_lines() -> None:
    assert len(bands(ink(zone("one two", fontsize=30)))) == 1
    assert len(bands(ink(zone("one\\ntwo", fontsize=30)))) == 2
    assert len(bands(ink(zone("one\ntwo\\nthree", fontsize=30)))) == 3


def test_interlign_multiplies_the_distance_between_lines() -> None:
    single = [start for start, _ in bands(ink(zone("AB\\nAB", fontsize=30)))]
    double = [start for start, _ in bands(ink(zone("AB\\nAB", fontsize=30, interlign=2.0)))]
    assert double[1] - double[0] == pytest.approx(2 * (single[1] - single[0]), abs=2)


def test_justify_ends_every_line_but_the_last_at_the_right_margin() -> None:
    mask = ink(zone(LONG, fontsize=24, align="justify"))
    lines = bands(mask)
    rights = [bbox(mask[start:end])[2] for start, end in lines]
    lefts = [bbox(mask[start:end])[0] for start, end in lines]
    assert max(rights[:-1]) - min(rights[:-1]) <= 3
    assert rights[-1] < min(rights[:-1]) - 20  # the paragraph's last line stays left-aligned
    assert max(lefts) - min(lefts) <= 3


def test_scale_two_doubles_the_ink_extent() -> None:
    one = bbox(ink(zone("Scaled text", fontsize=24, size=(320, 180), scale=1.0)))
    two = bbox(ink(zone("Scaled text", fontsize=24, size=(640, 360), scale=2.0)))
    assert (two[2] - two[0]) / (one[2] - one[0]) == pytest.approx(2.0, rel=0.05)
    assert (two[3] - two[1]) / (one[3] - one[1]) == pytest.approx(2.0, rel=0.1)


def test_font_names_map_case_insensitively_onto_distinct_faces() -> None:
    arial = zone("Fonts differ", fontname="arial", fontsize=30)
    assert (zone("Fonts differ", fontname="Arial", fontsize=30) == arial).all()
    assert (
        zone("Fonts differ", fontname="Times New Roman", fontsize=30)
        == zone("Fonts differ", fontname="times", fontsize=30)
    ).all()
    courier = zone("Fonts differ", fontname="couriernew", fontsize=30)
    assert (ink(arial) != ink(courier)).any()
    bold = zone("Fonts differ", fontname="arial", weight="bold", fontsize=30)
    assert ink(bold).sum() > 1.15 * ink(arial).sum()
    assert (zone("Fonts differ", fontname="arialbold", fontsize=30) == bold).all()
    italic = zone("Fonts differ", fontname="arial", style="italic", fontsize=30)
    assert (ink(italic) != ink(arial)).any()


def test_an_unknown_font_is_an_invalid_font_error_listing_the_choices() -> None:
    with pytest.raises(InvalidFontError) as caught:
        zone("Hi", fontname="Wingdings")
    assert str(caught.value).startswith("InvalidFontError: font 'Wingdings' is not available; choose one of: arial,")
    with pytest.raises(InvalidFontError):
        zone("Hi", weight="fat")


def test_bad_align_and_type_are_invalid_content() -> None:
    with pytest.raises(InvalidContentError, match="align 'middle'"):
        zone("Hi", align="middle")
    with pytest.raises(InvalidContentError, match="text type 'banner'"):
        text("Hi", "banner")


def advanced(content: str, reference: str, **options) -> np.ndarray:
    return text(content, "advanced", reference=reference, fontsize=30, **options)


def test_advanced_one_line_reference_cuts_the_text_with_an_ellipsis() -> None:
    content, reference = "A title far longer than its reference box", "Reference box"
    cut = advanced(content, reference)
    uncut = bbox(ink(advanced(content, content)))
    box = bbox(ink(advanced(reference, reference)))
    left, _, right, _ = bbox(ink(cut))
    assert right - left <= box[2] - box[0] + 2
    assert uncut[2] - uncut[0] > 2 * (right - left)
    # the drawing is a start of the text followed by an ellipsis
    assert any((advanced(content[:n].rstrip() + "\u2026", reference) == cut).all() for n in range(1, len(content)))


def test_advanced_multi_line_reference_wraps_to_that_many_lines() -> None:
    mask = ink(advanced(LONG, "A reference line\nand a second\nand a third"))
    assert len(bands(mask)) == 3
    box = bbox(ink(advanced("A reference line", "A reference line")))
    left, _, right, _ = bbox(mask)
    assert right - left <= box[2] - box[0] + 2


def test_advanced_text_sits_at_the_centre_and_moves_with_align() -> None:
    centred = bbox(ink(advanced("Centre", "Centre")))
    assert abs((centred[0] + centred[2]) / 2 - W / 2) < 4 and abs((centred[1] + centred[3]) / 2 - H / 2) < 12
    left, top, _, _ = bbox(ink(advanced("Corner", "Corner", align="left,top")))
    assert left < 10 and top < 20


def test_legend_is_a_caption_band_at_the_bottom() -> None:
    image = text("A short caption", "legend")
    alpha = image[..., 3]
    assert (alpha[: H // 2] == 0).all()  # nothing over the picture
    assert alpha[-1, 0] == 160 and (image[-1, 0, :3] == 0).all()  # translucent dark band
    band_top = int(np.flatnonzero(alpha[:, 0])[0])
    assert H - band_top < H / 4
    letters = image[..., 0] > 128
    left, _, right, _ = bbox(letters)
    assert abs((left + right) / 2 - W / 2) < 4  # centred


def test_an_empty_legend_draws_no_band() -> None:
    assert not text("  ", "legend")[..., 3].any()


def test_legend_keeps_at_most_two_lines() -> None:
    image = text(LONG * 3, "legend")
    assert len(bands(image[..., 0] > 128)) == 2
    assert (image[: H // 2, :, 3] == 0).all()


def test_a_huge_unwrapped_line_at_a_large_size_renders_only_what_shows() -> None:
    image = text("W" * 10_000, "zone", (1920, 1080), scale=3, wrap=False, fontsize=300)
    assert image.shape == (1080, 1920, 4)
    assert ink(image)[:, 0].any() and ink(image)[:, -1].any()
