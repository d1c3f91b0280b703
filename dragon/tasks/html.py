"""html.scrape (spec: Tasks Reference): the images and videos a web page offers."""

from __future__ import annotations

from email.message import Message

from pydantic import Field

from dragon.media import pages
from dragon.registry import Resources, TaskContext, TaskParams, task

MAX_PAGE_BYTES = 5 * 1024**2  # a longer page is read up to here, not refused


class ScrapeParams(TaskParams):
    url: str = Field(description="The page to read (its first bytes when it is large), or an image or video URL.")


@task("html.scrape", ScrapeParams, resources=Resources(cpus=0.25, memory_mb=256), values=("page_title", "hits"))
def html_scrape(ctx: TaskContext, params: ScrapeParams) -> dict:
    """``hits``: one object per image or video, ``{url, type, found_in, width?, height?}``,
    in document order. A URL that is itself an image or video is its own only hit."""
    fetched = ctx.fetch(params.url, MAX_PAGE_BYTES, truncate=True)
    header = Message()
    header["content-type"] = fetched.content_type or "text/html"
    media_type = header.get_content_type()
    if media_type.startswith(("image/", "video/")):
        return {"page_title": "", "hits": [{"url": params.url, "type": media_type.split("/")[0], "found_in": "url"}]}
    body = fetched.path.read_bytes()
    title, hits = pages.scrape(body, fetched.url or params.url, header.get_param("charset"))  # type: ignore[arg-type]
    return {"page_title": title, "hits": hits}
