"""Facebook Graph API resumable video upload (POST /me/videos in three phases).

1. ``upload_phase=start`` with ``file_size``: the upload session and video ids, and the
   first [start_offset, end_offset) window the server wants.
2. ``upload_phase=transfer`` with ``start_offset`` and the bytes as ``video_file_chunk``
   (multipart): the next window; done when start equals end. A broken transfer is sent
   again from the same offset; a server that already has it answers with the window it
   wants (error 1363037 carries it in ``error_data``).
3. ``upload_phase=finish`` with the title, description, privacy and no_story.

With an app secret, every call carries ``appsecret_proof`` (HMAC-SHA256 of the token).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import httpx

from dragon.config import Settings
from dragon.errors import AuthorizationError, QuotaExceededError, TaskError, UploadError, UploadRejectedError
from dragon.platforms.http import Interrupted, Platform, Progress, json_of, read_chunk

AUTH_CODES = {102, 190, 200, 10}
QUOTA_CODES = {4, 17, 32, 341, 613, 1363048}
WRONG_OFFSET = 1363037


def upload(
    path: Path,
    title: str,
    description: str,
    privacy: str,
    no_story: bool,
    access_token: str,
    app_secret: str,
    settings: Settings,
    progress: Progress | None = None,
) -> str:
    """Uploads ``path``; returns the video's URL."""
    size = path.stat().st_size
    auth: dict[str, Any] = {"access_token": access_token}
    if app_secret and app_secret != "-":
        auth["appsecret_proof"] = hmac.new(app_secret.encode(), access_token.encode(), hashlib.sha256).hexdigest()
    endpoint = f"{settings.facebook_graph_url.rstrip('/')}/me/videos"
    with Platform(settings, "Facebook", [access_token, app_secret]) as api:
        started = _ok(api, api.call("POST", endpoint, data={**auth, "upload_phase": "start", "file_size": str(size)}))
        session, video = str(started.get("upload_session_id", "")), str(started.get("video_id", ""))
        start, end = int(started.get("start_offset", 0)), int(started.get("end_offset", 0))
        resumes = 0
        while start < end:
            data = read_chunk(path, start, min(end - start, settings.upload_chunk_bytes))
            form = {**auth, "upload_phase": "transfer", "upload_session_id": session, "start_offset": str(start)}
            try:
                r = api.send(
                    "POST", endpoint, data=form, files={"video_file_chunk": ("chunk", data, "application/octet-stream")}
                )
            except Interrupted as why:
                resumes = api.resumed(resumes, why)
                continue  # the same offset again: the server answers with the window it wants
            window = _window(api, r)
            start, end = window
            if progress:
                progress(start / size)
        finish = {
            **auth,
            "upload_phase": "finish",
            "upload_session_id": session,
            "title": title,
            "description": description,
            "privacy": json.dumps({"value": privacy}),
            "no_story": "true" if no_story else "false",
        }
        done = _ok(api, api.call("POST", endpoint, data=finish))
        if done.get("success") is not True or not video:
            raise api.fail(UploadError, "the upload did not finish")
        return settings.facebook_video_url + video


def _window(api: Platform, response: httpx.Response) -> tuple[int, int]:
    body = json_of(response)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("code") == WRONG_OFFSET and isinstance(error.get("error_data"), dict):
        data = error["error_data"]
        return int(data["start_offset"]), int(data["end_offset"])
    body = _ok(api, response)
    return int(body["start_offset"]), int(body["end_offset"])


def _ok(api: Platform, response: httpx.Response) -> dict:
    body = json_of(response)
    if response.status_code == 200 and isinstance(body, dict) and "error" not in body:
        return body
    raise _error(api, response, body)


def _error(api: Platform, response: httpx.Response, body: Any) -> TaskError:
    """Graph API errors: {"error": {"message", "type", "code", "error_subcode"}}."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return api.fail(UploadRejectedError, f"HTTP {response.status_code}")
    code = error.get("code")
    message = f"{error.get('message', 'error')} ({error.get('type', 'error')} {code})"
    if code in QUOTA_CODES:  # rate limits come as OAuthException too
        return api.fail(QuotaExceededError, message)
    if code in AUTH_CODES or error.get("type") == "OAuthException":
        return api.fail(AuthorizationError, message)
    return api.fail(UploadRejectedError, message)
