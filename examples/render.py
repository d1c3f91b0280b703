"""Renders a video.create movie whose media are files on this computer: uploads every
local file the definition names (paths relative to the definition), puts their URLs in
its place, runs the task with a progress line and saves the movie next to you.

    export DRAGON_SECRET=...                  # printed by the first `make serve`
    python examples/make_media.py             # sample photos, music and a clip
    python examples/render.py examples/slideshow.xml      # writes slideshow.mp4

Needs only the client (`pip install dragon-tasks`); DRAGON_URL names another service.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from xml.sax.saxutils import quoteattr

import httpx

from dragon.client import Client

FILENAME = re.compile(r"""\bfilename=(["'])(.*?)\1""")


def with_uploads(definition: str, folder: Path, upload: Callable[[Path], str]) -> str:
    """The definition with each local filename replaced by the URL of its upload (each file once)."""
    urls: dict[str, str] = {}

    def url(match: re.Match[str]) -> str:
        name = match.group(2)
        if re.match(r"^[a-z][a-z0-9+.-]*://", name):  # already a URL
            return match.group(0)
        if name not in urls:
            urls[name] = upload(folder / name)
        return f"filename={quoteattr(urls[name])}"

    return FILENAME.sub(url, definition)


def main() -> None:
    parser = argparse.ArgumentParser(description="Render an SXML movie made of local files.")
    parser.add_argument("definition", type=Path, help="an SXML file, e.g. examples/slideshow.xml")
    parser.add_argument("--profile", default="360p", help="output profile (docs/sxml.md), default 360p")
    parser.add_argument("--output", type=Path, help="where to save the movie (default: NAME.mp4 here)")
    parser.add_argument("--url", default=os.environ.get("DRAGON_URL", "http://127.0.0.1:8000"))
    args = parser.parse_args()
    secret = os.environ.get("DRAGON_SECRET") or sys.exit("set DRAGON_SECRET to your account's secret")
    output = args.output or Path(args.definition.stem + ".mp4")
    with Client(args.url, secret=secret) as dragon:
        definition = with_uploads(args.definition.read_text(), args.definition.parent, dragon.upload)
        [task] = dragon.create({"task_name": "video.create", "definition": definition, "profile": args.profile})
        for status in dragon.stream([task.key]):
            print(
                f"\r{status.status} {status.progress if isinstance(status.progress, int) else ''}",
                end="",
                file=sys.stderr,
                flush=True,
            )
        print(file=sys.stderr)
    if status.status != "success":
        sys.exit(f"video.create failed: {status.error}")
    output.write_bytes(httpx.get(status.result["export"], timeout=300, follow_redirects=True).content)
    print(json.dumps({"movie": str(output), **status.result}))


if __name__ == "__main__":
    main()
