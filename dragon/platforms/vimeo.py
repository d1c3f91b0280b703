"""Vimeo uploads: API v3 with an OAuth2 token (tus), or the older API v2 with OAuth1.

v3 (tus 1.0.0): POST /me/videos with ``upload.approach=tus`` and the size gives the
video's link and an ``upload_link``; PATCH chunks at ``Upload-Offset``; after a broken
chunk, HEAD tells the offset the server holds. Free space: GET /me?fields=upload_quota.

v2 (REST, every call signed with OAuth1 HMAC-SHA1 by oauthlib):
vimeo.videos.upload.getQuota, getTicket (upload_method=streaming), PUT the file to the
ticket's endpoint (after a broken PUT, "Content-Range: bytes */SIZE" gets 308 with the
Range received, and the rest is PUT with its Content-Range), upload.complete, then
vimeo.videos.setTitle and setDescription.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from oauthlib import oauth1

from dragon.config import Settings
from dragon.errors import AuthorizationError, QuotaExceededError, TaskError, UploadError, UploadRejectedError
from dragon.platforms.http import Interrupted, Platform, Progress, json_of, range_end, read_chunk

ACCEPT = "application/vnd.vimeo.*+json;version=3.4"


@dataclass(frozen=True)
class Uploaded:
    url: str
    size: int
    free_space: int


@dataclass(frozen=True)
class OAuth1:
    consumer_key: str
    consumer_secret: str
    access_token_key: str
    access_token_secret: str


def upload_v3(
    path: Path, title: str, description: str, token: str, settings: Settings, progress: Progress | None = None
) -> Uploaded:
    size = path.stat().st_size
    api_url = settings.vimeo_api_url.rstrip("/")
    auth = {"Authorization": f"bearer {token}", "Accept": ACCEPT}
    with Platform(settings, "Vimeo", [token]) as api:
        if _free_space_v3(api, api_url, auth) < size:
            raise api.fail(QuotaExceededError, "not enough upload space left for this file")
        body: dict[str, Any] = {"upload": {"approach": "tus", "size": str(size)}, "name": title}
        if description:
            body["description"] = description
        r = api.call("POST", f"{api_url}/me/videos", headers=auth, json=body)
        created = _ok_v3(api, r)
        link, upload_link = created.get("link"), (created.get("upload") or {}).get("upload_link")
        if not isinstance(link, str) or not isinstance(upload_link, str):
            raise api.fail(UploadError, "the platform answered without an upload link")
        tus = {"Tus-Resumable": "1.0.0"}
        offset, resumes = 0, 0
        while offset < size:
            data = read_chunk(path, offset, settings.upload_chunk_bytes)
            headers = {**tus, "Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"}
            try:
                r = api.send("PATCH", upload_link, headers=headers, content=data)
            except Interrupted as why:
                resumes = api.resumed(resumes, why)
                offset = _tus_offset(api, upload_link, tus)
                continue
            if r.status_code == 409:  # offset conflict: ask where the server stands
                offset = _tus_offset(api, upload_link, tus)
                continue
            if r.status_code != 204:
                raise _error_v3(api, r)
            offset = int(r.headers.get("upload-offset", offset + len(data)))
            if progress:
                progress(offset / size)
        return Uploaded(link, size, _free_space_v3(api, api_url, auth))


def _tus_offset(api: Platform, upload_link: str, tus: dict) -> int:
    r = api.call("HEAD", upload_link, headers=tus)
    if r.status_code not in (200, 204) or "upload-offset" not in r.headers:
        raise _error_v3(api, r)
    return int(r.headers["upload-offset"])


def _free_space_v3(api: Platform, api_url: str, auth: dict) -> int:
    quota = _ok_v3(api, api.call("GET", f"{api_url}/me", params={"fields": "upload_quota"}, headers=auth))
    try:
        return int(quota["upload_quota"]["space"]["free"])
    except (KeyError, TypeError, ValueError):
        raise api.fail(UploadError, "the platform did not tell the upload space") from None


def _ok_v3(api: Platform, response: httpx.Response) -> dict:
    body = json_of(response)
    if response.status_code in (200, 201) and isinstance(body, dict):
        return body
    raise _error_v3(api, response)


def _error_v3(api: Platform, response: httpx.Response) -> TaskError:
    """Vimeo v3 errors: {"error", "developer_message", "error_code"}."""
    body = json_of(response)
    text = body.get("error") if isinstance(body, dict) else None
    message = f"{text or 'HTTP error'} (HTTP {response.status_code}"
    message += f", error {body['error_code']})" if isinstance(body, dict) and "error_code" in body else ")"
    if response.status_code == 401:
        return api.fail(AuthorizationError, message)
    if response.status_code == 429 or "quota" in message.lower() or "space" in message.lower():
        return api.fail(QuotaExceededError, message)
    return api.fail(UploadRejectedError, message)


def upload_v2(
    path: Path, title: str, description: str, credentials: OAuth1, settings: Settings, progress: Progress | None = None
) -> Uploaded:
    size = path.stat().st_size
    secrets = [
        credentials.consumer_key,
        credentials.consumer_secret,
        credentials.access_token_key,
        credentials.access_token_secret,
    ]
    with Platform(settings, "Vimeo", secrets) as api:
        rest = _Rest(api, settings.vimeo_v2_url, credentials)
        if _free_space_v2(api, rest) < size:
            raise api.fail(QuotaExceededError, "not enough upload space left for this file")
        ticket = rest.call("vimeo.videos.upload.getTicket", upload_method="streaming").get("ticket") or {}
        endpoint, ticket_id = ticket.get("endpoint"), ticket.get("id")
        if not isinstance(endpoint, str) or not ticket_id:
            raise api.fail(UploadError, "the platform answered without an upload ticket")
        _put_resumably(api, endpoint, path, size, progress)
        done = rest.call("vimeo.videos.upload.complete", ticket_id=str(ticket_id), filename=path.name)
        video_id = (done.get("ticket") or {}).get("video_id")
        if not video_id:
            raise api.fail(UploadError, "the upload did not complete")
        if title:
            rest.call("vimeo.videos.setTitle", video_id=str(video_id), title=title)
        if description:
            rest.call("vimeo.videos.setDescription", video_id=str(video_id), description=description)
        return Uploaded(settings.vimeo_video_url + str(video_id), size, _free_space_v2(api, rest))


def _put_resumably(api: Platform, endpoint: str, path: Path, size: int, progress: Progress | None) -> None:
    """The whole file in PUTs of at most a chunk each, resumed from the Range received."""
    offset, resumes = 0, 0
    chunk = api.settings.upload_chunk_bytes
    while offset < size:
        data = read_chunk(path, offset, chunk)
        headers = {"Content-Type": "video/mp4", "Content-Range": f"bytes {offset}-{offset + len(data) - 1}/{size}"}
        try:
            r = api.send("PUT", endpoint, headers=headers, content=data)
        except Interrupted as why:
            resumes = api.resumed(resumes, why)
            r = api.call("PUT", endpoint, headers={"Content-Range": f"bytes */{size}"}, content=b"")
            if r.status_code not in (200, 201, 308):
                raise api.fail(UploadError, f"the upload endpoint answered HTTP {r.status_code}") from None
            offset = range_end(r) if r.status_code == 308 else size
            continue
        if r.status_code not in (200, 201, 308):
            raise api.fail(UploadRejectedError, f"the upload endpoint answered HTTP {r.status_code}")
        offset += len(data)
        if progress:
            progress(offset / size)


def _free_space_v2(api: Platform, rest: _Rest) -> int:
    quota = rest.call("vimeo.videos.upload.getQuota")
    try:
        return int(quota["user"]["upload_space"]["free"])
    except (KeyError, TypeError, ValueError):
        raise api.fail(UploadError, "the platform did not tell the upload space") from None


class _Rest:
    """Vimeo's REST API v2: GET {url}?method=...&format=json, signed with OAuth1."""

    def __init__(self, api: Platform, url: str, credentials: OAuth1):
        self._api, self._url = api, url
        self._credentials = credentials

    def call(self, method: str, **params: str) -> dict:
        c = self._credentials
        signer = oauth1.Client(
            c.consumer_key,
            client_secret=c.consumer_secret,
            resource_owner_key=c.access_token_key,
            resource_owner_secret=c.access_token_secret,
            signature_method=oauth1.SIGNATURE_HMAC,
        )
        url = str(httpx.URL(self._url).copy_merge_params({"format": "json", "method": method, **params}))
        signed, headers, _ = signer.sign(url, http_method="GET")
        r = self._api.call("GET", signed, headers=headers)
        body = json_of(r)
        if isinstance(body, dict) and body.get("stat") == "ok":
            return body
        err = body.get("err") if isinstance(body, dict) else None
        if not isinstance(err, dict):
            raise self._api.fail(UploadRejectedError, f"{method}: HTTP {r.status_code}")
        message = f"{err.get('msg', 'error')}: {err.get('expl', '')} ({method}, code {err.get('code')})"
        if str(err.get("code")) in ("401", "403") or "oauth" in message.lower() or "token" in message.lower():
            raise self._api.fail(AuthorizationError, message)
        if "quota" in message.lower() or "space" in message.lower():
            raise self._api.fail(QuotaExceededError, message)
        raise self._api.fail(UploadRejectedError, message)
