"""POST /v2/sxml/check: a video.create definition checked and timed over HTTP, with
nothing fetched or rendered (what the dashboard's SXML editor shows)."""

from __future__ import annotations

from typing import Any

from tests.conftest import ROOT, Api

EDIT = (ROOT / "examples" / "video-edit.xml").read_text()


def _check(api: Api, definition: str, **extra: Any) -> dict[str, Any]:
    answer = api.http.post("/v2/sxml/check", json={"secret": api.secret, "definition": definition, **extra})
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_a_valid_movie_is_timed_node_by_node_at_its_lines(api: Api) -> None:
    check = _check(api, EDIT, lengths={"media/clip.mp4": 10})
    assert check["valid"] and check["errors"] == [] and check["unknown_lengths"] == []
    assert check["duration"] == 6.5  # 3 s, then (10 - 2) / 2 = 4 s, joined by a 0.5 s transition
    by_line = {(t["line"], t["tag"]): t for t in check["timing"]}
    assert by_line[(13, "transition")] == {"line": 13, "tag": "transition", "start": 2.5, "duration": 0.5}
    assert by_line[(14, "video")]["start"] == 2.5 and by_line[(14, "video")]["duration"] == 4.0
    assert 'resolved-duration="6.500"' in check["annotated"]


def test_sources_of_unknown_length_are_listed_and_timed_by_default(api: Api) -> None:
    check = _check(api, EDIT)
    assert check["valid"] and check["unknown_lengths"] == ["media/clip.mp4"]
    assert check["duration"] != 6.5


def test_an_invalid_movie_gives_its_error_at_its_line(api: Api) -> None:
    broken = EDIT.replace('<transition type="scan"', '<transition type="scan" duration="soon"', 1)
    check = _check(api, broken)
    assert not check["valid"]
    [error] = check["errors"]
    assert error["line"] == 13 and "duration" in error["message"]
    unclosed = _check(api, "<movie service='craftsman-1.0'>\n<body>\n<stack>\n</body></movie>")
    assert not unclosed["valid"] and unclosed["errors"][0]["line"] in (4, 5)


def test_checking_needs_credentials_and_a_definition(api: Api) -> None:
    assert api.http.post("/v2/sxml/check", json={"definition": EDIT}).status_code == 401
    missing = api.http.post("/v2/sxml/check", json={"secret": api.secret})
    assert missing.status_code == 400 and missing.json()["errors"][0]["name"] == "definition"
