"""html.scrape through the HTTP API, on pages served from loopback."""

from __future__ import annotations

from urllib.parse import quote

from tests.conftest import Api
from tests.support.servers import Origin

PAGE = """<!doctype html>
<html><head>
<title>  A   page
 of media </title>
<base href="/assets/">
<meta property="og:image" content="https://cdn.example.com/og.jpg">
<meta property="og:image:width" content="1200"><meta property="og:image:height" content="630">
<meta property="og:video:secure_url" content="https://cdn.example.com/og.mp4">
<meta name="twitter:image" content="tw.png">
<script type="application/ld+json">
{"@context": "https://schema.org", "@type": "NewsArticle",
 "image": ["ld-1.jpg", {"url": "ld-2.jpg", "width": 800, "height": 600}],
 "video": {"@type": "VideoObject", "contentUrl": "https://cdn.example.com/ld.mp4", "thumbnailUrl": "ld-thumb.jpg",
           "width": "1920", "height": "1080"}}
</script>
</head><body>
<img src="one.png" width="320" height="240px" alt="">
<img data-src="lazy.webp" srcset="small.jpg 480w, big.jpg 1080w">
<img src="one.png">
<picture><source srcset="pic.avif 2x"><img src="pic.jpg"></picture>
<video src="clip.webm" poster="poster.jpg" width="640" height="360">
  <source src="clip.mp4" type="video/mp4">
</video>
<a href="/files/photo.JPEG">a photo</a> <a href="movie.mov?dl=1">a movie</a> <a href="page.html">not media</a>
<iframe src="https://www.youtube.com/embed/abc123" width="560" height="315"></iframe>
<iframe src="https://ads.example.com/frame"></iframe>
<img src="data:image/png;base64,AAAA"> <a href="javascript:void(0)">x.jpg</a>
</body></html>
"""


def scrape(api: Api, url: str) -> dict:
    return api.result({"task_name": "html.scrape", "url": url})


def test_every_kind_of_hit_in_document_order(api: Api, origin: Origin) -> None:
    result = scrape(api, origin.add("media.html", PAGE.encode()))
    assert result["page_title"] == "A page of media"
    a = f"{origin.url}/assets"
    assert result["hits"] == [
        {
            "url": "https://cdn.example.com/og.jpg",
            "type": "image",
            "found_in": "og:image",
            "width": 1200,
            "height": 630,
        },
        {"url": "https://cdn.example.com/og.mp4", "type": "video", "found_in": "og:video"},
        {"url": f"{a}/tw.png", "type": "image", "found_in": "twitter:image"},
        {"url": f"{a}/ld-1.jpg", "type": "image", "found_in": "json-ld"},
        {"url": f"{a}/ld-2.jpg", "type": "image", "found_in": "json-ld", "width": 800, "height": 600},
        {
            "url": "https://cdn.example.com/ld.mp4",
            "type": "video",
            "found_in": "json-ld",
            "width": 1920,
            "height": 1080,
        },
        {"url": f"{a}/ld-thumb.jpg", "type": "image", "found_in": "json-ld"},
        {"url": f"{a}/one.png", "type": "image", "found_in": "img", "width": 320, "height": 240},
        {"url": f"{a}/lazy.webp", "type": "image", "found_in": "img"},
        {"url": f"{a}/small.jpg", "type": "image", "found_in": "srcset", "width": 480},
        {"url": f"{a}/big.jpg", "type": "image", "found_in": "srcset", "width": 1080},
        {"url": f"{a}/pic.avif", "type": "image", "found_in": "picture"},
        {"url": f"{a}/pic.jpg", "type": "image", "found_in": "img"},
        {"url": f"{a}/clip.webm", "type": "video", "found_in": "video", "width": 640, "height": 360},
        {"url": f"{a}/poster.jpg", "type": "image", "found_in": "poster", "width": 640, "height": 360},
        {"url": f"{a}/clip.mp4", "type": "video", "found_in": "source", "width": 640, "height": 360},
        {"url": f"{origin.url}/files/photo.JPEG", "type": "image", "found_in": "link"},
        {"url": f"{a}/movie.mov?dl=1", "type": "video", "found_in": "link"},
        {
            "url": "https://www.youtube.com/embed/abc123",
            "type": "video",
            "found_in": "iframe",
            "width": 560,
            "height": 315,
        },
    ]


def test_pages_in_declared_charsets(api: Api, origin: Origin) -> None:
    russian = "<html><head><meta charset='windows-1251'><title>Привет, мир</title></head><body></body></html>"
    assert scrape(api, origin.add("ru.html", russian.encode("windows-1251")))["page_title"] == "Привет, мир"
    french = "<html><head><title>Été à Paris</title></head><body><img src='é.png'></body></html>"
    url = origin.add("fr.html", french.encode("iso-8859-1")) + "?type=" + quote("text/html; charset=ISO-8859-1")
    result = scrape(api, url)
    assert result["page_title"] == "Été à Paris"
    assert result["hits"][0]["url"] == f"{origin.url}/é.png"


def test_a_malformed_page_still_gives_what_it_holds(api: Api, origin: Origin) -> None:
    broken = (
        b"<html><head><title>Broken</title><body><div><p><img src='a.gif' width=abc><table><tr><td><video src=v.mp4>"
        b"<script type='application/ld+json'>{not json</script></html"
    )
    result = scrape(api, origin.add("broken.html", broken))
    assert [(h["url"].rsplit("/", 1)[1], h["type"]) for h in result["hits"]] == [("a.gif", "image"), ("v.mp4", "video")]
    assert "width" not in result["hits"][0]
    assert scrape(api, origin.add("empty.html", b"")) == {"page_title": "", "hits": []}


def test_a_page_over_the_size_limit_is_read_up_to_it(api: Api, origin: Origin) -> None:
    page = b"<html><head><title>Long</title></head><body><img src='first.png'>" + b"<p>filler</p>" * 600_000
    result = scrape(api, origin.add("long.html", page + b"<img src='last.png'></body></html>"))
    assert result["page_title"] == "Long"
    assert [h["url"].rsplit("/", 1)[1] for h in result["hits"]] == ["first.png"]


def test_relative_urls_follow_redirects(api: Api, origin: Origin) -> None:
    (origin.root / "deep").mkdir(exist_ok=True)
    origin.add("deep/page.html", b"<img src='pic.png'><a href='../up.mp4'>v</a>")
    result = scrape(api, f"{origin.url}/redirect?to=/deep/page.html")
    assert [h["url"] for h in result["hits"]] == [f"{origin.url}/deep/pic.png", f"{origin.url}/up.mp4"]


def test_a_media_url_is_its_own_hit(api: Api, origin: Origin) -> None:
    url = origin.add("photo.bin", b"\x89PNG...") + "?type=image/png"
    assert scrape(api, url) == {"page_title": "", "hits": [{"url": url, "type": "image", "found_in": "url"}]}


def test_an_unreachable_page_is_a_download_error(api: Api, origin: Origin) -> None:
    status = api.run({"task_name": "html.scrape", "url": f"{origin.url}/no-such-page.html"})
    assert status["status"] == "error" and status["error"].startswith("CouldNotDownloadError: ")
