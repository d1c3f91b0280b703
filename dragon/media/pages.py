"""Web pages: the images and videos a page offers (html.scrape), parsed with lxml.

Hits come from ``<img>`` (src, srcset, lazy-loading data-src), ``<picture>/<source>``,
``<video>`` (src, poster) and its ``<source>``s, Open Graph and Twitter card ``<meta>``,
JSON-LD ``ImageObject``/``VideoObject`` (and ``image``/``thumbnailUrl`` properties),
links to media files, and iframes of known video hosts. URLs are resolved against the
page's address and its ``<base href>``; only http(s) URLs are kept; the first occurrence
of a URL wins (in document order), later ones only fill in a missing width or height.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import lxml.etree
import lxml.html

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".gif", ".webp", ".avif", ".bmp", ".svg", ".heic")
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".webm", ".mov", ".ogv", ".mkv", ".avi", ".flv", ".wmv", ".mpg", ".mpeg", ".m3u8")
VIDEO_EMBEDS = re.compile(
    r"^https?://(www\.)?(youtube\.com/embed/|youtube-nocookie\.com/embed/|player\.vimeo\.com/video/"
    r"|dailymotion\.com/embed/|geo\.dailymotion\.com/player|facebook\.com/plugins/video|player\.twitch\.tv/"
    r"|fast\.wistia\.net/embed/|players\.brightcove\.net/|streamable\.com/[eo]/)"
)
LAZY_ATTRIBUTES = ("data-src", "data-lazy-src", "data-original")


@dataclass
class Hit:
    url: str
    type: str  # "image" or "video"
    found_in: (
        str  # img, srcset, picture, video, poster, source, og:image, og:video, twitter:image, json-ld, link, iframe
    )
    width: int | None = None
    height: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def scrape(body: bytes, page_url: str, charset: str | None = None) -> tuple[str, list[dict[str, Any]]]:
    """The page's title and its hits. A page that is not HTML at all gives no hits."""
    document = _parse(body, charset)
    if document is None:
        return "", []
    base = page_url
    for href in document.xpath("//base/@href")[:1]:
        base = urljoin(page_url, href.strip())
    hits: dict[str, Hit] = {}
    for hit in _find(document, base):
        if urlsplit(hit.url).scheme not in ("http", "https"):
            continue
        known = hits.get(hit.url)
        if known is None:
            hits[hit.url] = hit
        else:
            known.width = known.width or hit.width
            known.height = known.height or hit.height
    return _title(document), [h.as_dict() for h in hits.values()]


def _parse(body: bytes, charset: str | None) -> Any:
    if not body.strip():
        return None
    parser = lxml.html.HTMLParser(encoding=charset) if charset and _known_codec(charset) else None
    try:
        return lxml.html.document_fromstring(body, parser=parser)
    except (lxml.etree.ParserError, ValueError):
        return None


def _known_codec(name: str) -> bool:
    try:
        "".encode(name)
    except LookupError:
        return False
    return True


def _title(document: Any) -> str:
    for text in document.xpath("//title/text()")[:1]:
        return " ".join(text.split())
    for content in document.xpath("//meta[@property='og:title']/@content")[:1]:
        return " ".join(content.split())
    return ""


def _find(document: Any, base: str) -> Iterator[Hit]:
    """Every candidate in document order (meta tags where they stand, JSON-LD too)."""
    og_last: Hit | None = None  # og:image:width/height describe the og:image before them
    for element in document.iter():
        tag = element.tag if isinstance(element.tag, str) else ""
        if tag == "img":
            size = _size(element)
            for attribute in ("src", *LAZY_ATTRIBUTES):
                if element.get(attribute):
                    yield Hit(_url(base, element.get(attribute)), "image", "img", *size)
            yield from _srcset(base, element.get("srcset"), "srcset")
        elif tag == "source":
            parent = element.getparent()
            inside = parent.tag if parent is not None and isinstance(parent.tag, str) else ""
            if inside == "picture":
                yield from _srcset(base, element.get("srcset"), "picture")
            elif inside == "video" and element.get("src"):
                yield Hit(_url(base, element.get("src")), "video", "source", *_size(parent))
        elif tag == "video":
            size = _size(element)
            if element.get("src"):
                yield Hit(_url(base, element.get("src")), "video", "video", *size)
            if element.get("poster"):
                yield Hit(_url(base, element.get("poster")), "image", "poster", *size)
        elif tag == "meta":
            name = (element.get("property") or element.get("name") or "").strip().lower()
            content = (element.get("content") or "").strip()
            if not content:
                continue
            if name in (
                "og:image",
                "og:image:url",
                "og:image:secure_url",
                "og:video",
                "og:video:url",
                "og:video:secure_url",
            ):
                kind = "video" if name.startswith("og:video") else "image"
                og_last = Hit(_url(base, content), kind, f"og:{kind}")
                yield og_last
            elif name in ("og:image:width", "og:image:height", "og:video:width", "og:video:height") and og_last:
                if og_last.type == name.split(":")[1]:
                    setattr(og_last, name.rsplit(":", 1)[1], _int(content))
            elif name in ("twitter:image", "twitter:image:src"):
                yield Hit(_url(base, content), "image", "twitter:image")
            elif name in ("twitter:player:stream",):
                yield Hit(_url(base, content), "video", "twitter:player")
        elif tag == "script" and (element.get("type") or "").strip().lower() == "application/ld+json":
            try:
                data = json.loads(element.text or "")
            except ValueError:
                continue
            yield from _json_ld(base, data)
        elif tag == "a" and element.get("href"):
            url = _url(base, element.get("href"))
            path = urlsplit(url).path.lower()
            if path.endswith(IMAGE_EXTENSIONS):
                yield Hit(url, "image", "link")
            elif path.endswith(VIDEO_EXTENSIONS):
                yield Hit(url, "video", "link")
        elif tag in ("iframe", "embed") and element.get("src"):
            url = _url(base, element.get("src"))
            if VIDEO_EMBEDS.match(url):
                yield Hit(url, "video", "iframe", *_size(element))


def _json_ld(base: str, data: Any, depth: int = 0) -> Iterator[Hit]:
    """ImageObject/VideoObject nodes and image/thumbnail properties, at any depth (bounded)."""
    if depth > 12:
        return
    if isinstance(data, list):
        for item in data[:1000]:
            yield from _json_ld(base, item, depth + 1)
        return
    if not isinstance(data, dict):
        return
    kinds = data.get("@type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    size = (_int(data.get("width")), _int(data.get("height")))
    if "VideoObject" in kinds:
        for field in ("contentUrl", "embedUrl"):
            if isinstance(data.get(field), str):
                yield Hit(_url(base, data[field]), "video", "json-ld", *size)
    if "ImageObject" in kinds:
        for field in ("contentUrl", "url"):
            if isinstance(data.get(field), str):
                yield Hit(_url(base, data[field]), "image", "json-ld", *size)
    for field in ("image", "thumbnailUrl", "thumbnail"):
        value = data.get(field)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                yield Hit(_url(base, item), "image", "json-ld")
    for key, value in data.items():
        if isinstance(value, (dict, list)) and key not in ("image", "thumbnail"):
            yield from _json_ld(base, value, depth + 1)
        elif key in ("image", "thumbnail") and isinstance(value, (dict, list)):
            yield from _json_ld(base, _as_images(value), depth + 1)


def _as_images(value: Any) -> Any:
    """An ``image`` property's objects are images even without an ``@type``."""
    if isinstance(value, dict):
        return {"@type": "ImageObject", **value}
    return [_as_images(v) if isinstance(v, dict) else v for v in value]


def _srcset(base: str, srcset: str | None, found_in: str) -> Iterator[Hit]:
    """Each candidate of a srcset ("url 2x, url 640w"); a "640w" descriptor is a width."""
    for candidate in (srcset or "").split(","):
        parts = candidate.split()
        if parts:
            width = _int(parts[1][:-1]) if len(parts) > 1 and parts[1].endswith("w") else None
            yield Hit(_url(base, parts[0]), "image", found_in, width)


def _size(element: Any) -> tuple[int | None, int | None]:
    return _int(element.get("width")), _int(element.get("height"))


def _int(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value if value > 0 else None
    match = re.fullmatch(r"\s*(\d{1,6})(\.\d+)?\s*(px)?\s*", str(value or ""))
    return int(match.group(1)) or None if match else None


def _url(base: str, value: str) -> str:
    return urljoin(base, value.strip())
