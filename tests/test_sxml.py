"""SXML: parsing and validation, timing resolution (golden tests of every timing
statement of the record and of the choices docs/sxml.md makes), annotation, profiles
and the ``dragon sxml`` command."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest

from dragon.errors import InvalidXMLError
from dragon.sxml import Document, Node, annotate, parse, resolve
from dragon.sxml.profiles import (
    DEFAULT_PROFILE,
    DOCUMENTED_NAMES,
    PROFILE_NAMES,
    profile,
)
from tests.conftest import MEDIA

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures" / "sxml"
VIDEO_2S = MEDIA / "video" / "synthetic" / "h264_160x96_25fps_2s_rot_none.mp4"


def movie(body: str) -> str:
    return f'<movie service="craftsman-1.0"><body>{body}</body></movie>'


def timed(definition: str, lengths: dict[str, float] | None = None) -> tuple[Document, float]:
    """Parse and resolve; media lengths by filename (or TTS text)."""
    lengths = lengths or {}
    document = parse(definition)
    total = resolve(document.movie, lambda node: lengths.get(node.attrs.get("filename") or node.text))
    return document, total


def named(root: Node, name: str) -> Node:
    """The node with ``name="…"`` (a valid attribute on timed nodes)."""
    stack = [root]
    while stack:
        node = stack.pop()
        if node.attrs.get("name") == name:
            return node
        stack.extend(node.children)
    raise LookupError(name)


def span(node: Node) -> tuple[float, float]:
    return round(node.start, 6), round(node.duration, 6)


def error_of(definition: str, lengths: dict[str, float] | None = None) -> str:
    with pytest.raises(InvalidXMLError) as caught:
        timed(definition, lengths)
    return str(caught.value)


# -- timing: the verified statements ---------------------------------------------------


def test_body_concatenates_its_children():
    doc, total = timed(
        movie(
            '<effect type="none" duration="2" name="a"><image color="#000000"/></effect>'
            '<effect type="none" duration="3" name="b"><image color="#000000"/></effect>'
            '<effect type="none" duration="4" name="c"><image color="#000000"/></effect>'
        )
    )
    assert total == 9
    assert [span(named(doc.movie, n)) for n in "abc"] == [(0, 2), (2, 3), (5, 4)]


def test_a_transition_overlaps_both_neighbours_ten_plus_ten_with_one_is_nineteen():
    doc, total = timed(
        movie(
            '<effect type="none" duration="10"><image color="#000000"/></effect>'
            '<transition type="move" duration="1" name="t"/>'
            '<effect type="none" duration="10" name="b"><image color="#000000"/></effect>'
        )
    )
    assert total == 19
    assert span(named(doc.movie, "t")) == (9, 1)
    assert span(named(doc.movie, "b")) == (9, 10)


def test_a_transition_without_duration_or_type_lasts_one_second():
    doc, total = timed(
        movie(
            '<effect type="none" duration="3"><image color="#000000"/></effect><transition name="t"/>'
            '<effect type="none" duration="3"><image color="#000000"/></effect>'
        )
    )
    assert total == 5
    assert span(named(doc.movie, "t")) == (2, 1)


def test_a_lone_effect_lasts_five_seconds():
    doc, total = timed(movie('<effect type="kenburns" name="e"><image filename="a.jpg"/></effect>'))
    assert total == 5
    assert span(named(doc.movie, "e")) == (0, 5)


def test_two_effects_without_durations_last_five_seconds_each():
    _, total = timed(movie('<effect type="none"><image color="#000000"/></effect>' * 2))
    assert total == 10


def test_a_stack_lasts_as_long_as_its_music_when_nothing_else_has_a_length():
    doc, total = timed(
        movie(
            '<stack><effect type="kenburns" name="e"><image filename="a.jpg"/></effect>'
            '<audio filename="song.mp3" name="m"/></stack>'
        ),
        {"song.mp3": 200.0},
    )
    assert total == 200
    assert span(named(doc.movie, "e")) == (0, 200)
    assert span(named(doc.movie, "m")) == (0, 200)


def test_a_voice_with_margin_end_times_the_stack_and_the_slave_music_follows():
    doc, total = timed(
        movie(
            '<stack><effect type="kenburns"><image filename="a.jpg"/></effect>'
            '<audio filename="song.mp3" duration=".." name="m"/>'
            '<audio voice="neospeech:julie" margin-end="2.0" name="v">Hello world</audio></stack>'
        ),
        {"song.mp3": 200.0, "Hello world": 7.0},
    )
    assert total == 9
    assert span(named(doc.movie, "v")) == (0, 7)
    assert span(named(doc.movie, "m")) == (0, 9)


def test_a_slave_audio_follows_its_stack_and_does_not_time_it():
    doc, total = timed(
        movie(
            '<stack><effect type="diving" duration="10"><image filename="a.jpg"/></effect>'
            '<audio filename="song.mp3" duration=".." name="m"/></stack>'
        ),
        {"song.mp3": 200.0},
    )
    assert total == 10
    assert span(named(doc.movie, "m")) == (0, 10)


def test_margins_worked_example_a_stack_fixed_by_its_effect_cuts_the_song():
    """Tutorial 06: a stack fixed at 15 s by its effect; the song (longer) with
    margin-both=2 gives 2 s of silence, 11 s of audio, 2 s of silence."""
    doc, total = timed(
        movie(
            '<stack><effect type="none" duration="15"><image filename="a.jpg"/></effect>'
            '<audio filename="song.mp3" margin-both="2" fadeout="2" name="m"/></stack>'
        ),
        {"song.mp3": 100.0},
    )
    assert total == 15
    assert span(named(doc.movie, "m")) == (2, 11)


def test_margin_both_on_a_slave_audio_in_a_fixed_stack():
    doc, _ = timed(
        movie(
            '<stack duration="15"><effect type="none"><image filename="a.jpg"/></effect>'
            '<audio filename="song.mp3" duration=".." margin-both="2" name="m"/></stack>'
        ),
        {"song.mp3": 100.0},
    )
    assert span(named(doc.movie, "m")) == (2, 11)


def test_a_short_song_with_margins_plays_its_length_then_silence():
    doc, _ = timed(
        movie(
            '<stack><effect type="none" duration="15"><image filename="a.jpg"/></effect>'
            '<audio filename="jingle.mp3" margin-start="3" name="m"/></stack>'
        ),
        {"jingle.mp3": 4.0},
    )
    assert span(named(doc.movie, "m")) == (3, 4)


def test_only_margin_start_or_only_margin_end_and_the_duration_takes_the_rest():
    doc, _ = timed(
        movie(
            '<stack duration="10"><effect type="none"><image color="#000000"/></effect>'
            '<overlay margin-start="3" name="late"><image filename="logo.png"/></overlay>'
            '<overlay margin-end="4" name="early"><image filename="logo.png"/></overlay></stack>'
        )
    )
    assert span(named(doc.movie, "late")) == (3, 7)
    assert span(named(doc.movie, "early")) == (0, 6)


def test_a_duration_with_only_margin_end_is_pinned_to_the_end():
    doc, _ = timed(
        movie(
            '<stack duration="10"><effect type="none"><image color="#000000"/></effect>'
            '<text type="zone" duration="2" margin-end="1" name="t">Bye</text></stack>'
        )
    )
    assert span(named(doc.movie, "t")) == (7, 2)


def test_an_explicit_stack_duration_is_imposed_on_its_children():
    doc, total = timed(
        movie(
            '<stack duration="10" name="s"><effect type="none" duration="30" name="e">'
            '<image color="#000000"/></effect>'
            '<overlay margin-start="2" duration="3" name="o"><image filename="l.png"/></overlay>'
            "</stack>"
        )
    )
    assert total == 10
    assert span(named(doc.movie, "e")) == (0, 10)
    assert span(named(doc.movie, "o")) == (2, 3)


def test_an_effect_duration_is_imposed_on_its_video():
    doc, total = timed(
        movie('<effect type="none" duration="4"><video filename="clip.mp4" name="v"/></effect>'), {"clip.mp4": 30.0}
    )
    assert total == 4
    assert span(named(doc.movie, "v")) == (0, 4)


def test_items_with_shorter_durations_end_early_in_a_stack():
    doc, total = timed(
        movie(
            '<stack><effect type="panel" duration="5" name="p"><image filename="a.jpg"/></effect>'
            '<effect type="kenburns" duration="2.5" name="k"><image filename="b.jpg"/></effect>'
            "</stack>"
        )
    )
    assert total == 5
    assert span(named(doc.movie, "k")) == (0, 2.5)
    assert span(named(doc.movie, "p")) == (0, 5)


def test_animators_and_filters_are_timed_relative_to_their_host():
    doc, _ = timed(
        movie(
            '<effect type="none" duration="3"><image color="#000000"/></effect>'
            '<effect type="none" duration="6"><image filename="a.jpg"/>'
            '<filter type="alpha" duration="1" margin-end="0" name="fade"/>'
            '<animator type="slide-in" margin-start="2" name="in"/>'
            '<filter type="blur" name="whole"/></effect>'
        )
    )
    assert span(named(doc.movie, "fade")) == (8, 1)
    assert span(named(doc.movie, "in")) == (5, 4)
    assert span(named(doc.movie, "whole")) == (3, 6)


def test_video_speed_two_halves_its_length():
    doc, total = timed(
        movie(
            '<stack><effect type="none"><video filename="clip.mp4" speed="2.0" name="v"/></effect>'
            '<audio filename="song.mp3" duration=".."/></stack>'
        ),
        {"clip.mp4": 20.0, "song.mp3": 99.0},
    )
    assert total == 10
    assert span(named(doc.movie, "v")) == (0, 10)


def test_skip_then_speed_shift_and_scale_the_video_and_skip_shifts_the_audio():
    _, total = timed(
        movie(
            '<effect type="none"><video filename="clip.mp4" skip="4" speed="2.0"/></effect>'
            '<audio filename="song.mp3" skip="5"/>'
        ),
        {"clip.mp4": 20.0, "song.mp3": 12.0},
    )
    assert total == 8 + 7


def test_a_two_media_effect_shares_its_time_the_video_plays_after_five_seconds():
    doc, _ = timed(
        movie(
            '<effect type="diving" duration="10"><image filename="a.jpg" name="i"/>'
            '<video filename="clip.mp4" name="v"/></effect>'
        ),
        {"clip.mp4": 30.0},
    )
    assert span(named(doc.movie, "i")) == (0, 5)
    assert span(named(doc.movie, "v")) == (5, 5)


def test_an_effect_without_duration_gives_each_of_its_media_the_longest_video():
    doc, total = timed(
        movie('<effect type="sliding"><video filename="a.mp4" name="a"/><video filename="b.mp4" name="b"/></effect>'),
        {"a.mp4": 6.0, "b.mp4": 4.0},
    )
    assert total == 12
    assert span(named(doc.movie, "b")) == (6, 6)


def test_children_past_a_fixed_parent_end_are_truncated_not_squeezed():
    doc, total = timed(
        movie(
            '<stack duration="6"><sequence>'
            '<effect type="sliding" duration="4" name="a"><image filename="1.jpg"/></effect>'
            '<effect type="sliding" duration="4" name="b"><image filename="2.jpg" name="b1"/>'
            '<image filename="3.jpg" name="b2"/></effect>'
            '<effect type="none" duration="4" name="c"><image filename="4.jpg"/></effect>'
            "</sequence></stack>"
        )
    )
    assert total == 6
    assert span(named(doc.movie, "a")) == (0, 4)
    assert span(named(doc.movie, "b")) == (4, 2)
    assert span(named(doc.movie, "b1")) == (4, 2)
    assert span(named(doc.movie, "b2")) == (6, 0)
    assert span(named(doc.movie, "c")) == (8, 0)


def test_a_sequence_of_items_without_lengths_shares_its_stack_time_evenly():
    doc, _ = timed(
        movie(
            '<stack><sequence><effect type="kenburns" name="a"><image filename="1.jpg"/></effect>'
            '<transition duration="1"/><effect type="kenburns" name="b"><image filename="2.jpg"/>'
            '</effect></sequence><audio filename="song.mp3"/></stack>'
        ),
        {"song.mp3": 11.0},
    )
    assert span(named(doc.movie, "a")) == (0, 6)
    assert span(named(doc.movie, "b")) == (5, 6)


def test_example_audio_slaved_to_the_pictures_lasts_23_seconds():
    doc, total = timed(
        (FIXTURES / "slaved-audio.xml").read_text(), {"http://x/song1.mp3": 180.0, "http://x/song2.mp3": 200.0}
    )
    assert total == 23
    transition = doc.movie.find("body")[0].find("transition")[0]
    assert span(transition) == (8, 2)
    second = doc.movie.find("body")[0].find("stack")[1]
    assert span(second.find("audio")[0]) == (8, 15)


def test_example_hello_world_with_its_post_roll():
    doc, total = timed(
        (FIXTURES / "hello-world.xml").read_text(),
        {
            "http://s3.amazonaws.com/stupeflix-assets/apiusecase/footage.mov": 20.0,
            "http://s3.amazonaws.com/stupeflix-assets/apiusecase/branding-postroll.mp4": 3.0,
        },
    )
    assert total == 5 + 3 - 0.5
    stack = doc.movie.find("body")[0].find("stack")[0]
    text = stack.find("effect")[1].find("text")[0]
    assert (text.text, span(text)) == ("Hello World", (0, 5))
    assert doc.warnings == []


def test_nested_document_times_every_level():
    doc, total = timed((FIXTURES / "nested.xml").read_text(), {"http://example.com/music.mp3": 60.0})
    assert total == 20
    assert doc.warnings == []
    body = doc.movie.find("body")[0]
    stack = body.find("stack")[0]
    sequence = stack.find("sequence")[0]
    assert span(sequence) == (0, 18)
    assert [span(t) for t in sequence.find("transition")] == [(3, 1), (6.5, 0.5), (10, 1.5), (14, 2)]
    rotator = sequence.find("effect")[2]
    assert [span(m) for m in rotator.media()] == [(10, 2), (12, 2), (14, 2)]
    title = sequence.find("stack")[0].find("text")[0]
    assert [span(a) for a in title.find("animator")] == [(6.5, 5), (11, 0.5)]
    last_fade = sequence.find("effect")[3].find("filter")[0]
    assert span(last_fade) == (17, 1)
    assert [span(o) for o in stack.find("overlay")] == [(2, 4), (6, 4), (10, 7.5)]
    assert span(stack.find("audio")[0]) == (0, 18)
    assert span(stack.find("camera")[0].find("animator")[0]) == (0, 2)
    assert span(body.find("effect")[0]) == (17, 3)


# -- timing errors --------------------------------------------------------------------


@pytest.mark.parametrize(
    "times, complaint",
    [
        ('duration="3" margin-start="1" margin-end="1"', "cannot have 'duration', 'margin-start' and 'margin-end'"),
        ('duration="3" margin-both="1"', "cannot have both 'margin-both' and 'duration'"),
        ('margin-both="1" margin-start="1"', "cannot have 'margin-both' with"),
    ],
)
def test_contradictory_margins_are_refused_with_their_line(times: str, complaint: str):
    message = error_of(
        f'<movie service="craftsman-1.0">\n<body>\n<stack duration="5">\n'
        f'<overlay {times}><image filename="a.png"/></overlay>\n</stack></body></movie>'
    )
    assert message.startswith("InvalidXMLError: line 4: <overlay> ")
    assert complaint in message


def test_a_negative_duration_is_refused():
    message = error_of(movie('<effect type="none" duration="-2"><image color="#000000"/></effect>'))
    assert "line 1: <effect> attribute 'duration' must be >= 0" in message


def test_a_transition_longer_than_a_neighbour_is_refused():
    message = error_of(
        '<movie service="craftsman-1.0"><body>\n'
        '<effect type="none" duration="1"><image color="#000000"/></effect>\n'
        '<transition duration="2"/>\n'
        '<effect type="none" duration="5"><image color="#000000"/></effect></body></movie>'
    )
    assert message == ("InvalidXMLError: line 3: <transition> lasts 2 s, longer than the <effect> of line 2 (1.000 s)")


@pytest.mark.parametrize(
    "body, line, complaint",
    [
        ('<transition/>\n<effect type="none"><image color="#000000"/></effect>', 1, "cannot start a <body>"),
        ('<effect type="none"><image color="#000000"/></effect>\n<transition/>', 2, "cannot end a <body>"),
        (
            '<effect type="none"><image color="#000000"/></effect>\n<transition/>\n<transition/>\n'
            '<effect type="none"><image color="#000000"/></effect>',
            3,
            "follows another transition",
        ),
    ],
)
def test_a_transition_must_join_two_items(body: str, line: int, complaint: str):
    message = error_of(movie(body))
    assert message.startswith(f"InvalidXMLError: line {line}: <transition> ")
    assert complaint in message


def test_skipping_past_the_end_of_a_video_is_refused():
    message = error_of(movie('<effect type="none"><video filename="c.mp4" skip="12"/></effect>'), {"c.mp4": 10.0})
    assert "line 1: <video> skips 12 s of a source that lasts 10.000 s" in message


def test_a_movie_longer_than_three_hours_is_refused():
    message = error_of(movie('<effect type="none" duration="10801"><image color="#000000"/></effect>'))
    assert "more than the limit of 10800" in message


def test_a_movie_of_zero_seconds_is_refused():
    assert "the movie is empty" in error_of(movie('<effect type="none" duration="0"><image color="#000000"/></effect>'))


# -- parsing and validation -----------------------------------------------------------


def test_malformed_xml_names_its_line():
    message = error_of('<movie service="craftsman-1.0">\n<body>\n<effect type="none">\n</body></movie>')
    assert message.startswith("InvalidXMLError: line 4: Opening and ending tag mismatch")


def test_an_unknown_element_is_named_with_its_line():
    message = error_of(movie('\n\n<effect type="none"><picture filename="a.jpg"/></effect>'))
    assert message == "InvalidXMLError: line 3: unknown element <picture>"


@pytest.mark.parametrize(
    "body, complaint",
    [
        (
            '<stack><effect type="none"><image color="#000000"/></effect><transition/>'
            '<effect type="none"><image color="#000000"/></effect></stack>',
            "<transition> is not allowed in <stack>",
        ),
        (
            '<sequence><camera/><effect type="none"><image color="#000000"/></effect></sequence>',
            "<camera> is not allowed in <sequence>",
        ),
        ('<image filename="a.jpg"/>', "<image> is not allowed in <body>"),
        (
            '<effect type="none"><image filename="a.jpg"><text type="zone">x</text></image></effect>',
            "<text> is not allowed in <image>",
        ),
    ],
)
def test_misplaced_elements_are_refused(body: str, complaint: str):
    message = error_of(movie(body))
    assert message.startswith("InvalidXMLError: line 1: ")
    assert complaint in message


@pytest.mark.parametrize(
    "element, complaint",
    [
        ('<effect type="none"><image color="#12345"/></effect>', "attribute 'color' must be a colour"),
        ('<effect type="zoom"><image color="#123456"/></effect>', "attribute 'type' must be one of none, kenburns"),
        ('<effect type="none" depthEnable="yes"><image color="#123456"/></effect>', "must be 'true' or 'false'"),
        ('<effect type="none" duration="long"><image color="#123456"/></effect>', "'duration' must be a number"),
        ('<effect><image color="#123456"/></effect>', "<effect> needs a 'type' attribute"),
        (
            '<effect type="kenburns"><image filename="a.jpg"/><image filename="b.jpg"/></effect>',
            "of type 'kenburns' takes one image or video, not 2",
        ),
        ('<effect type="none"><image/></effect>', "<image> needs a 'filename' or a 'color'"),
        ('<effect type="none"><image type="map" center="Paris"/></effect>', "of type 'map' is not supported"),
        ('<effect type="none"><video/></effect>', "<video> needs a 'filename'"),
        ('<audio voice="neospeech:julie"/>', "needs a 'filename', or a 'voice' and the text to speak"),
        ('<overlay top="high"><image color="#123456"/></overlay>', "'top' must be a number"),
        ('<transition type="melt"/>', "'type' must be one of crossfade"),
        (
            '<widget type="set.scrapbook.text.01b.m.01"/>',
            "type 'set.scrapbook.text.01b.m.01' is not supported (only director.theme.* is rendered, as a slideshow)",
        ),
        ('<stack><sphere radius="1"/></stack>', "<sphere> is not supported"),
        ('<effect type="none"><widget type="director.theme.tiles"/></effect>', "<widget> is not allowed in <effect>"),
        (
            '<widget type="director.theme.tiles"><track type="audio"><audio filename="a.mp3"/></track></widget>',
            'has no image, video or text in a <track type="video">',
        ),
    ],
)
def test_bad_values_are_refused_with_their_line(element: str, complaint: str):
    if element.startswith("<transition"):
        element = (
            f'<effect type="none"><image color="#000000"/></effect>{element}'
            f'<effect type="none"><image color="#000000"/></effect>'
        )
    message = error_of(movie(element))
    assert message.startswith("InvalidXMLError: line 1: ")
    assert complaint in message


def test_a_doctype_is_refused():
    message = error_of(
        '<!DOCTYPE movie [<!ENTITY big "x">]>\n' + movie('<effect type="none"><image color="#000000"/></effect>')
    )
    assert "DOCTYPE declarations are not allowed" in message


def test_a_definition_over_the_size_limit_is_refused():
    assert "larger than" in error_of(movie(" " * 2_000_001))


def test_the_service_must_be_craftsman():
    assert "'service' must be one of craftsman-1.0" in error_of(
        '<movie service="stupeflix-1.0"><body><effect type="none"><image color="#000000"/></effect></body></movie>'
    )


def test_unknown_attributes_and_a_missing_service_are_warnings():
    doc, _ = timed(
        '<movie>\n<body>\n<effect type="none" foo="1"><image color="#000000" bar="2"/></effect>\n'
        "<text>Hi</text></body></movie>"
    )
    assert doc.warnings == [
        "line 1: <movie> has no service attribute; read as craftsman-1.0",
        "line 3: <effect> ignores attribute 'foo'",
        "line 3: <image> ignores attribute 'bar'",
        "line 4: <text> has no type; read as 'zone'",
    ]


def test_filters_take_any_parameter_but_known_ones_are_checked():
    doc, _ = timed(
        movie(
            '<effect type="none"><image color="#000000"/>'
            '<filter type="distancecolor" dropShadowOpacity="0.5" strokeWidth="2"/></effect>'
        )
    )
    assert doc.warnings == []
    assert "'diameter' must be a number" in error_of(
        movie('<effect type="none"><image color="#000000"/><filter type="blur" diameter="big"/></effect>')
    )


def test_text_content_is_stripped_and_entities_become_characters():
    doc, _ = timed(
        movie(
            '<effect type="none"><image color="#000000"/>'
            '<text type="advanced" reference="x&#10;y">\n   Two&#10;lines &amp; more  \n</text></effect>'
        )
    )
    text = doc.movie.find("body")[0].find("effect")[0].find("text")[0]
    assert text.text == "Two\nlines & more"
    assert text.attrs["reference"] == "x\ny"


def test_a_custom_transition_is_a_crossfade_with_a_warning():
    doc, _ = timed(
        movie(
            '<effect type="none"><image color="#000000"/></effect>'
            '<transition type="custom" duration="1"><widget type="set.transitions.dissolve.01"/>'
            '</transition><effect type="none"><image color="#000000"/></effect>'
        )
    )
    transition = doc.movie.find("body")[0].find("transition")[0]
    assert (transition.attrs["type"], transition.children) == ("crossfade", [])
    assert doc.warnings == [
        "line 1: custom transitions (widget set.transitions.dissolve.01) are rendered as a crossfade"
    ]


def test_a_fragment_is_wrapped_in_a_movie_and_keeps_its_line_numbers():
    doc, total = timed(
        '<effect type="none" duration="2"><image color="#000000"/></effect>\n'
        '<transition type="crossfade" duration="0.5"/>\n'
        '<effect type="none" duration="2"><image color="#000000"/></effect>'
    )
    assert total == 3.5
    assert doc.movie.attrs == {"service": "craftsman-1.0"}
    assert [c.line for c in doc.movie.find("body")[0].children] == [1, 2, 3]
    message = error_of(
        '<?xml version="1.0"?>\n<effect type="none"><image color="#000000"/></effect>\n'
        '<effect type="none"><image colour="#000000"/></effect>'
    )
    assert message == "InvalidXMLError: line 3: <image> needs a 'filename' or a 'color'"


def test_a_director_theme_widget_becomes_a_captioned_slideshow_over_its_audio():
    doc, total = timed((FIXTURES / "theme-widget.xml").read_text(), {"http://x/music.mp3": 100.0})
    assert total == 4 + 4 + 3 - 2
    assert doc.warnings == [
        "line 8: map images are not supported; the widget skips it",
        "line 13: <style> in a widget is ignored",
    ]
    stack = doc.movie.find("body")[0].find("stack")[0]
    sequence, audio = stack.children
    items = [c for c in sequence.children if c.tag != "transition"]
    assert [t.attrs for t in sequence.find("transition")] == [{"type": "crossfade", "duration": "1.0"}] * 2
    first, second, card = items
    assert (first.tag, first.attrs["type"], first.media()[0].attrs["filename"]) == (
        "effect",
        "kenburns",
        "http://x/1.jpg",
    )
    assert second.tag == "stack"
    legend = second.find("text")[0]
    assert (legend.attrs["type"], legend.text, span(legend)) == ("legend", "At the beach", (3, 4))
    plate, title = card.children
    assert plate.media()[0].attrs == {"color": "#1a1a1a"}
    assert (title.attrs["type"], title.text, span(title)) == ("zone", "The end\nof summer", (6, 3))
    assert (audio.attrs["duration"], span(audio)) == ("..", (0, 9))


def test_node_accessors_convert_and_report_bad_values():
    node = Node("overlay", {"color": "#ff000080", "c": "1.5,-2", "top": "0.1", "left": "auto", "n": "x"}, line=7)
    assert node.color("color", None) == (255, 0, 0, 128)
    assert node.color("missing", "#010203") == (1, 2, 3, 255)
    assert node.couple("c", (0, 0)) == (1.5, -2.0)
    assert node.triplet("missing", (1, 2, 3)) == (1, 2, 3)
    assert node.placement() == {"top": 0.1, "bottom": None, "left": None, "right": None, "width": None, "height": None}
    with pytest.raises(InvalidXMLError, match="line 7: <overlay> attribute 'n' must be a number"):
        node.number("n", 0.0)
    with pytest.raises(InvalidXMLError, match="attribute 'c' must be three numbers"):
        node.triplet("c", (0, 0, 0))


# -- annotation -----------------------------------------------------------------------


def test_annotation_carries_resolved_times_and_reads_back_the_same():
    doc, _ = timed((FIXTURES / "nested.xml").read_text(), {"http://example.com/music.mp3": 60.0})
    text = annotate(doc.movie)
    assert (
        '<transition type="cube" duration="1.5" direction="right" resolved-start="10.000" '
        'resolved-duration="1.500"/>' in text
    )
    again, total = timed(text, {"http://example.com/music.mp3": 60.0})
    assert total == 20
    assert annotate(again.movie) == text


# -- profiles -------------------------------------------------------------------------


def test_all_66_profile_names_resolve_to_even_sizes():
    assert len(set(PROFILE_NAMES)) == 66
    for name in PROFILE_NAMES:
        p = profile(name)
        assert p.width % 2 == 0 and p.height % 2 == 0 and p.width > 0 and p.height > 0, name
        assert p.video_bitrate > 0 and p.audio_bitrate > 0
        assert p.audio_rate == (48000 if name.startswith(("dvd-ntsc", "dvd-pal")) else 44100), name
    assert DOCUMENTED_NAMES <= set(PROFILE_NAMES)


def test_documented_profiles_match_the_2012_table():
    table = {
        "iphone": (480, 320, 25, 700, 96),
        "youtube": (640, 360, 25, 1024, 128),
        "quicktime": (640, 480, 25, 1024, 128),
        "quicktime-small": (320, 240, 25, 256, 64),
        "flash-small": (320, 240, 25, 192, 64),
        "iphone-flv": (480, 320, 25, 1024, 96),
        "youtube-flv": (640, 360, 25, 1700, 128),
        "flash": (640, 480, 25, 512, 96),
        "flash-hq": (640, 480, 25, 1200, 128),
        "mobile-small": (176, 144, 15, 92, 32),
        "mobile": (320, 240, 25, 256, 32),
        "wmv1": (640, 480, 25, 1024, 128),
        "wmv2": (640, 480, 25, 1024, 128),
        "720p": (1280, 720, 25, 1500, 256),
    }
    for name, (width, height, fps, video, audio) in table.items():
        p = profile(name)
        assert (p.width, p.height, p.fps, p.video_bitrate, p.audio_bitrate) == (width, height, fps, video, audio), name
    for name, size, fps in [
        ("dvd-ntsc-4-3", (720, 480), Fraction(30000, 1001)),
        ("dvd-ntsc-16-9-h", (352, 240), Fraction(30000, 1001)),
        ("dvd-pal-16-9", (720, 576), 25),
        ("dvd-pal-4-3-h", (352, 288), 25),
    ]:
        assert ((profile(name).width, profile(name).height), profile(name).fps) == (size, fps)


@pytest.mark.parametrize(
    "name, size, fps",
    [
        ("360p", (640, 360), Fraction(25)),
        ("240p-24-fps", (426, 240), Fraction(24)),
        ("360p-23-976-fps", (640, 360), Fraction(24000, 1001)),
        ("720p-23-98-fps", (1280, 720), Fraction(24000, 1001)),
        ("360p-29-97-fps", (640, 360), Fraction(30000, 1001)),
        ("360p-12-fps", (640, 360), Fraction(12)),
        ("720p-12-5-fps", (1280, 720), Fraction(25, 2)),
        ("360p-11-988-fps", (640, 360), Fraction(11988, 1000)),
        ("youtube-5fps", (640, 360), Fraction(5)),
        ("youtube-12-5fps", (640, 360), Fraction(25, 2)),
        ("480p-4-3-29-97-fps", (640, 480), Fraction(30000, 1001)),
        ("1080p-24-fps", (1920, 1080), Fraction(24)),
        ("720p-vhq-29-97-fps", (1280, 720), Fraction(30000, 1001)),
        ("square-640", (640, 640), Fraction(25)),
        ("iphone-16-9", (480, 270), Fraction(25)),
        ("cine-half-hd", (960, 540), Fraction(24)),
    ],
)
def test_inferred_profiles_and_frame_rate_suffixes(name: str, size: tuple[int, int], fps: Fraction):
    p = profile(name)
    assert ((p.width, p.height), p.fps) == (size, fps)


@pytest.mark.parametrize(
    "name, muxer, video, audio, extension",
    [
        ("360p", "mp4", "h264", "aac", "mp4"),
        ("flash", "flv", "flv", "libmp3lame", "flv"),
        ("youtube-slow-flv", "flv", "flv", "libmp3lame", "flv"),
        ("flash-h264", "flv", "h264", "aac", "flv"),
        ("mobile-small", "mp4", "mpeg4", "aac", "mp4"),
        ("wmv1", "asf", "wmv1", "wmav1", "wmv"),
        ("ntsc-wide-wmv", "asf", "wmv2", "wmav1", "wmv"),
        ("dvd-pal-16-9-h", "dvd", "mpeg2video", "mp2", "mpg"),
        ("dvd-mpeg1", "mpeg", "mpeg1video", "mp2", "mpg"),
    ],
)
def test_profiles_name_the_container_and_codecs_of_the_2012_table(
    name: str, muxer: str, video: str, audio: str, extension: str
):
    fmt = profile(name).format
    assert (fmt.muxer, fmt.video, fmt.audio, fmt.extension) == (muxer, video, audio, extension)


@pytest.mark.parametrize(
    "name, shape",
    [
        ("dvd-ntsc-16-9", Fraction(16, 9)),
        ("dvd-ntsc-4-3", Fraction(4, 3)),
        ("dvd-pal-16-9", Fraction(16, 9)),
        ("dvd-pal-4-3-h", Fraction(4, 3)),
        ("dvd-ntsc-16-9-h", Fraction(16, 9)),
        ("360p", Fraction(16, 9)),
        ("quicktime", Fraction(4, 3)),
    ],
)
def test_dvd_pixels_are_stretched_to_a_4_3_or_16_9_picture(name: str, shape: Fraction):
    p = profile(name)
    assert Fraction(p.width, p.height) * p.pixel_aspect == shape
    assert (p.pixel_aspect == 1) == (not name.startswith("dvd"))


def test_an_unknown_profile_is_a_key_error_and_the_default_is_360p():
    with pytest.raises(KeyError):
        profile("4k")
    assert DEFAULT_PROFILE == "360p"


# -- the dragon sxml command ----------------------------------------------------------


def run_cli(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "dragon", "sxml", *args],
        check=False,
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        timeout=60,
    )


def test_the_command_probes_local_videos_and_prints_annotated_sxml(tmp_path: Path):
    definition = tmp_path / "movie.xml"
    definition.write_text(
        movie(
            f'<effect type="none"><video filename="{VIDEO_2S}" speed="2.0"/></effect>'
            '<effect type="none" foo="1"><video filename="clip.mp4"/></effect>'
        )
    )
    (tmp_path / "clip.mp4").write_bytes(VIDEO_2S.read_bytes())
    result = run_cli(str(definition))
    assert result.returncode == 0, result.stderr
    assert (
        f'<video filename="{VIDEO_2S}" speed="2.0" resolved-start="0.000" resolved-duration="1.000"/>' in result.stdout
    )
    assert '<video filename="clip.mp4" resolved-start="1.000" resolved-duration="2.000"/>' in result.stdout
    assert result.stderr.splitlines() == ["warning: line 1: <effect> ignores attribute 'foo'", "duration: 3.000 s"]


def test_the_command_reads_stdin_takes_length_overrides_and_speaks_texts_to_time_them():
    result = run_cli(
        "-",
        "--length",
        "http://x/song.mp3=12.5",
        stdin=(
            '<stack><effect type="kenburns"><image filename="a.jpg"/></effect>'
            '<audio filename="http://x/song.mp3"/></stack>'
            '<audio voice="neospeech:julie">one two three four five</audio>'
        ),
    )
    assert result.returncode == 0, result.stderr
    spoken = re.search(
        r'<audio voice="neospeech:julie" resolved-start="12.500" resolved-duration="([0-9.]+)">', result.stdout
    )
    assert spoken and 1.0 < float(spoken.group(1)) < 4.0  # espeak-ng's own length for five words
    assert result.stderr.strip().splitlines()[-1] == f"duration: {12.5 + float(spoken.group(1)):.3f} s"


def test_the_command_fetches_http_sources(tmp_path: Path):
    (tmp_path / "clip.mp4").write_bytes(VIDEO_2S.read_bytes())
    server = subprocess.Popen(
        [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert server.stdout is not None  # stdout=PIPE
        port = server.stdout.readline().split("port ")[1].split()[0]
        url = f"http://127.0.0.1:{port}/clip.mp4"
        result = run_cli(
            "-",
            stdin=f'<effect type="none"><video filename="{url}"/></effect>',
            env={"DRAGON_ALLOW_PRIVATE_URLS": "true"},
        )
    finally:
        server.terminate()
        server.wait()
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "duration: 2.000 s"


def test_the_command_reports_invalid_definitions_and_unreadable_media(tmp_path: Path):
    result = run_cli("-", stdin="<effect type='none'>\n<picture/></effect>")
    assert result.returncode == 1
    assert result.stderr.strip() == "Error: InvalidXMLError: line 2: unknown element <picture>"
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    result = run_cli("-", stdin=f'<effect type="none"><video filename="{tmp_path / "bad.mp4"}"/></effect>')
    assert result.returncode == 1
    assert "give its length with --length" in result.stderr
