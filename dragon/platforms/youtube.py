"""YouTube Data API v3 resumable upload (videos.insert, uploadType=resumable).

1. POST /upload/youtube/v3/videos?uploadType=resumable&part=snippet,status with the
   metadata as JSON and X-Upload-Content-Length/-Type: the session URI is in Location.
2. PUT chunks (multiples of 256 KiB) with Content-Range; 308 "Resume Incomplete" carries
   the Range received so far; 200/201 carries the video resource.
3. After a broken chunk: PUT with "Content-Range: bytes */SIZE" and no body asks for the
   Range received, and the upload goes on from there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

import httpx

from dragon.config import Settings
from dragon.errors import AuthorizationError, QuotaExceededError, TaskError, UploadError, UploadRejectedError
from dragon.platforms.http import Interrupted, Platform, Progress, json_of, range_end, read_chunk

QUANTUM = 256 * 1024
AUTH_REASONS = {"authError", "invalidCredentials", "unauthorized", "forbidden", "insufficientPermissions"}
QUOTA_REASONS = {
    "quotaExceeded",
    "rateLimitExceeded",
    "userRateLimitExceeded",
    "dailyLimitExceeded",
    "uploadLimitExceeded",
}


@dataclass(frozen=True)
class Metadata:
    title: str
    description: str = ""
    tags: list[str] = field(default_factory=list)
    category_id: int = 22  # People & Blogs, the spec's default
    privacy_status: str = "public"

    def resource(self) -> dict:
        snippet = {
            "title": self.title,
            "description": self.description,
            "tags": self.tags,
            "categoryId": str(self.category_id),
        }
        return {"snippet": snippet, "status": {"privacyStatus": self.privacy_status}}


def upload(
    path: Path,
    meta: Metadata,
    access_token: str,
    developer_key: str,
    settings: Settings,
    progress: Progress | None = None,
) -> str:
    """Uploads ``path``; returns the video's watch URL."""
    size = path.stat().st_size
    chunk = max(QUANTUM, settings.upload_chunk_bytes // QUANTUM * QUANTUM)
    auth = {"Authorization": f"Bearer {access_token}"}
    with Platform(settings, "YouTube", [access_token, developer_key]) as api:
        endpoint = f"{settings.youtube_api_url.rstrip('/')}/upload/youtube/v3/videos"
        r = api.call(
            "POST",
            endpoint,
            params={"uploadType": "resumable", "part": "snippet,status", "key": developer_key},
            headers={**auth, "X-Upload-Content-Length": str(size), "X-Upload-Content-Type": "video/*"},
            json=meta.resource(),
        )
        if r.status_code != 200 or "location" not in r.headers:
            raise _error(api, r)
        session = urljoin(endpoint, r.headers["location"])
        offset, resumes = 0, 0
        while True:
            data = read_chunk(path, offset, chunk)
            headers = {**auth, "Content-Range": f"bytes {offset}-{offset + len(data) - 1}/{size}"}
            try:
                r = api.send("PUT", session, headers=headers, content=data)
            except Interrupted as why:
                resumes = api.resumed(resumes, why)
                done = _received(api, session, auth, size)
                if isinstance(done, str):
                    return settings.youtube_watch_url + done
                offset = done
                continue
            if r.status_code in (200, 201):
                return settings.youtube_watch_url + _video_id(api, r)
            if r.status_code == 308:
                offset = range_end(r)
                if progress:
                    progress(offset / size)
                continue
            if r.status_code == 404:
                raise api.fail(UploadError, "the upload session expired")
            raise _error(api, r)


def _received(api: Platform, session: str, auth: dict, size: int) -> int | str:
    """Bytes the session holds (or the video id if it is complete)."""
    r = api.call("PUT", session, headers={**auth, "Content-Range": f"bytes */{size}"}, content=b"")
    if r.status_code in (200, 201):
        return _video_id(api, r)
    if r.status_code == 308:
        return range_end(r)
    raise _error(api, r)


def _video_id(api: Platform, response: httpx.Response) -> str:
    body = json_of(response)
    if not isinstance(body, dict) or not isinstance(body.get("id"), str):
        raise api.fail(UploadError, "the platform answered without a video id")
    return body["id"]


def _error(api: Platform, response: httpx.Response) -> TaskError:
    """Google's error body: {"error": {"code", "message", "errors": [{"reason", ...}]}}."""
    body = json_of(response)
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return api.fail(UploadRejectedError, f"HTTP {response.status_code}")
    reasons = {e.get("reason") for e in error.get("errors", []) if isinstance(e, dict)}
    message = f"{error.get('message', 'error')} ({', '.join(sorted(r for r in reasons if r)) or response.status_code})"
    if response.status_code == 401 or reasons & AUTH_REASONS:
        return api.fail(AuthorizationError, message)
    if reasons & QUOTA_REASONS:
        return api.fail(QuotaExceededError, message)
    return api.fail(UploadRejectedError, message)
