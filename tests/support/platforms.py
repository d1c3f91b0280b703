"""Local stand-ins for YouTube, Facebook and Vimeo that follow their documented upload
protocols closely enough to exercise Dragon's clients: sessions, chunk offsets, resume
after a dropped connection, and the platforms' error bodies.

A token's first word chooses the behaviour: "good-..." succeeds, "expired-..." is
refused, "noquota-..." hits the quota or space limit, "flaky-..." drops the connection
once in the middle of the second chunk (after keeping part of it, as a real server may). What arrived is kept in
``uploads`` (platform -> bytes) and ``metadata`` (platform -> fields) for assertions.
"""

from __future__ import annotations

import email
import email.policy
import hashlib
import hmac
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, parse_qsl, urlsplit

from oauthlib.oauth1.rfc5849 import signature, utils

DEVELOPER_KEY = "dev-key-123"
FB_APP_SECRET = "fb-app-secret"
V2_CONSUMER = ("consumer-key", "consumer-secret")
V2_TOKEN_SECRET = "token-secret"
VIMEO_SPACE = 50 * 1024**2


class Platforms:
    def __init__(self) -> None:
        self.uploads: dict[str, bytearray] = {}
        self.metadata: dict[str, dict[str, Any]] = {}
        self.drops: dict[str, int] = {}  # platform -> connections dropped
        self.sessions: dict[str, dict[str, Any]] = {}
        self.lock = threading.Lock()
        platforms = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                platforms.route(self, "GET")

            def do_POST(self) -> None:
                platforms.route(self, "POST")

            def do_PUT(self) -> None:
                platforms.route(self, "PUT")

            def do_PATCH(self) -> None:
                platforms.route(self, "PATCH")

            def do_HEAD(self) -> None:
                platforms.route(self, "HEAD")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def settings(self) -> dict[str, str]:
        """The service's environment that points its clients here."""
        return {
            "DRAGON_YOUTUBE_API_URL": f"{self.url}/youtube",
            "DRAGON_FACEBOOK_GRAPH_URL": f"{self.url}/facebook/v19.0",
            "DRAGON_VIMEO_API_URL": f"{self.url}/vimeo",
            "DRAGON_VIMEO_V2_URL": f"{self.url}/vimeo-v2/api/rest/v2",
        }

    def close(self) -> None:
        self.server.shutdown()

    def reset(self) -> None:
        with self.lock:
            self.uploads.clear()
            self.metadata.clear()
            self.drops.clear()

    # plumbing

    def route(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(h.path)
        body = h.rfile.read(int(h.headers.get("Content-Length") or 0)) if method in ("POST", "PUT", "PATCH") else b""
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        path = parts.path
        try:
            if path.startswith("/youtube/"):
                self.youtube(h, method, path, query, body)
            elif path.startswith("/facebook/"):
                self.facebook(h, body)
            elif path.startswith("/vimeo/") or path.startswith("/tus/"):
                self.vimeo(h, method, path, query, body)
            elif path.startswith("/vimeo-v2/") or path.startswith("/v2upload/"):
                self.vimeo_v2(h, method, path, query, body)
            else:
                reply(h, 404, {"error": "not found"})
        except _Dropped:
            h.close_connection = True

    def flaky(self, platform: str, session: dict[str, Any], data: bytes) -> bool:
        """The second chunk of a flaky session: keep half, then drop the connection."""
        session["chunks"] = session.get("chunks", 0) + 1
        if kind_of(session.get("token", "")) == "flaky" and session["chunks"] == 2 and not session.get("dropped"):
            session["dropped"] = True
            with self.lock:
                self.drops[platform] = self.drops.get(platform, 0) + 1
            session["data"] += data[: len(data) // 2]
            raise _Dropped()
        return False

    def done(self, platform: str, session: dict[str, Any], **metadata: Any) -> None:
        with self.lock:
            self.uploads[platform] = bytearray(session["data"])
            self.metadata[platform] = {**session.get("meta", {}), **metadata}

    # YouTube Data API v3

    def youtube(self, h: Any, method: str, path: str, query: dict, body: bytes) -> None:
        token = h.headers.get("Authorization", "").removeprefix("Bearer ")
        kind = kind_of(token)
        if method == "POST":
            if query.get("uploadType") != "resumable" or query.get("key") != DEVELOPER_KEY:
                return reply(h, 400, google_error(400, "API key not valid. Please pass a valid API key.", "keyInvalid"))
            if kind == "expired":
                return reply(h, 401, google_error(401, "Invalid Credentials", "authError"))
            if kind == "noquota":
                return reply(
                    h,
                    403,
                    google_error(
                        403, "The request cannot be completed because you have exceeded your quota.", "quotaExceeded"
                    ),
                )
            if kind not in ("good", "flaky"):
                return reply(h, 401, google_error(401, "Invalid Credentials", "authError"))
            meta = json.loads(body)
            sid = uuid.uuid4().hex
            self.sessions[sid] = {
                "token": token,
                "size": int(h.headers["X-Upload-Content-Length"]),
                "data": bytearray(),
                "meta": meta,
            }
            location = (
                f"http://{h.headers['Host']}/youtube/upload/youtube/v3/videos?uploadType=resumable&upload_id={sid}"
            )
            return reply(h, 200, {}, {"Location": location})
        session = self.sessions.get(query.get("upload_id", ""))
        if session is None:
            return reply(h, 404, google_error(404, "Upload session not found", "notFound"))
        if token != session["token"]:
            return reply(h, 401, google_error(401, "Invalid Credentials", "authError"))
        spec = h.headers.get("Content-Range", "").removeprefix("bytes ")
        held = len(session["data"])
        if not spec.startswith("*"):
            first, last = (int(x) for x in spec.split("/")[0].split("-"))
            if first != held or last - first + 1 != len(body):
                return reply(h, 400, google_error(400, "Invalid Content-Range", "badContent"))
            self.flaky("youtube", session, body)
            session["data"] += body
            held = len(session["data"])
        if held >= session["size"]:
            self.done("youtube", session)
            return reply(h, 200, {"id": "yt-video-1", "kind": "youtube#video"})
        return reply(h, 308, None, {"Range": f"bytes=0-{held - 1}"} if held else {})

    # Facebook Graph API

    def facebook(self, h: Any, body: bytes) -> None:
        form = parse_form(h.headers.get("Content-Type", ""), body)
        token = form.get("access_token", "")
        kind = kind_of(token)
        if kind == "expired":
            return reply(h, 400, fb_error("Error validating access token: Session has expired.", "OAuthException", 190))
        if kind == "noquota":
            return reply(h, 400, fb_error("(#4) Application request limit reached", "OAuthException", 4))
        if kind not in ("good", "flaky"):
            return reply(h, 400, fb_error("Invalid OAuth access token.", "OAuthException", 190))
        proof = hmac.new(FB_APP_SECRET.encode(), token.encode(), hashlib.sha256).hexdigest()
        if form.get("appsecret_proof") not in (None, proof):
            return reply(
                h, 400, fb_error("Invalid appsecret_proof provided in the API argument", "GraphMethodException", 100)
            )
        phase = form.get("upload_phase")
        if phase == "start":
            sid = uuid.uuid4().hex
            size = int(form["file_size"])
            self.sessions[sid] = {"token": token, "size": size, "data": bytearray(), "proof": "appsecret_proof" in form}
            return reply(
                h,
                200,
                {
                    "video_id": "fb-video-1",
                    "upload_session_id": sid,
                    "start_offset": "0",
                    "end_offset": str(min(size, 300_000)),
                },
            )
        session = self.sessions.get(form.get("upload_session_id", ""))
        if session is None:
            return reply(h, 400, fb_error("Invalid upload session", "OAuthException", 6000))
        held = len(session["data"])
        if phase == "transfer":
            chunk = form["video_file_chunk"]
            if int(form["start_offset"]) != held:
                return reply(
                    h,
                    400,
                    fb_error(
                        "Your video upload timed out before it could be completed.",
                        "OAuthException",
                        1363037,
                        {"start_offset": str(held), "end_offset": str(min(session["size"], held + 300_000))},
                    ),
                )
            session["chunks"] = session.get("chunks", 0) + 1
            session["data"] += chunk
            held = len(session["data"])
            if kind_of(session["token"]) == "flaky" and session["chunks"] == 2 and not session.get("dropped"):
                session["dropped"] = True  # the chunk arrived, the answer is lost
                with self.lock:
                    self.drops["facebook"] = self.drops.get("facebook", 0) + 1
                raise _Dropped()
            return reply(h, 200, {"start_offset": str(held), "end_offset": str(min(session["size"], held + 300_000))})
        if phase == "finish":
            if held != session["size"]:
                return reply(h, 400, fb_error("The video file is incomplete", "OAuthException", 1363019))
            self.done(
                "facebook",
                session,
                title=form.get("title"),
                description=form.get("description"),
                privacy=json.loads(form.get("privacy", "{}")),
                no_story=form.get("no_story"),
                signed=session["proof"],
            )
            return reply(h, 200, {"success": True})
        return reply(h, 400, fb_error("Invalid upload_phase", "OAuthException", 100))

    # Vimeo API v3 (tus)

    def vimeo(self, h: Any, method: str, path: str, query: dict, body: bytes) -> None:
        if path.startswith("/tus/"):
            session = self.sessions.get(path.removeprefix("/tus/"))
            if session is None or h.headers.get("Tus-Resumable") != "1.0.0":
                return reply(h, 404, None)
            held = len(session["data"])
            if method == "HEAD":
                return reply(
                    h,
                    200,
                    None,
                    {"Upload-Offset": str(held), "Upload-Length": str(session["size"]), "Tus-Resumable": "1.0.0"},
                )
            if int(h.headers.get("Upload-Offset", -1)) != held:
                return reply(h, 409, None)
            self.flaky("vimeo", session, body)
            session["data"] += body
            if len(session["data"]) >= session["size"]:
                self.done("vimeo", session)
            return reply(h, 204, None, {"Upload-Offset": str(len(session["data"])), "Tus-Resumable": "1.0.0"})
        token = h.headers.get("Authorization", "").removeprefix("bearer ")
        kind = kind_of(token)
        if kind not in ("good", "flaky", "noquota"):
            return reply(
                h,
                401,
                {
                    "error": "Unable to authenticate you.",
                    "error_code": 8003,
                    "developer_message": "The token is invalid or expired.",
                },
            )
        used = sum(len(s["data"]) for s in self.sessions.values() if s.get("platform") == "vimeo")
        free = 1000 if kind == "noquota" else VIMEO_SPACE - used
        if method == "GET" and path == "/vimeo/me":
            return reply(
                h, 200, {"upload_quota": {"space": {"free": free, "max": VIMEO_SPACE, "used": VIMEO_SPACE - free}}}
            )
        if method == "POST" and path == "/vimeo/me/videos":
            request = json.loads(body)
            size = int(request["upload"]["size"])
            if request["upload"].get("approach") != "tus":
                return reply(h, 400, {"error": "Only tus uploads here.", "error_code": 2204})
            if size > free:
                return reply(
                    h,
                    403,
                    {"error": "The user doesn't have enough free space to upload this video.", "error_code": 4101},
                )
            sid = uuid.uuid4().hex
            self.sessions[sid] = {
                "token": token,
                "size": size,
                "data": bytearray(),
                "platform": "vimeo",
                "meta": {"name": request.get("name"), "description": request.get("description")},
            }
            return reply(
                h,
                200,
                {
                    "uri": "/videos/424242",
                    "link": "https://vimeo.com/424242",
                    "upload": {
                        "approach": "tus",
                        "size": str(size),
                        "upload_link": f"http://{h.headers['Host']}/tus/{sid}",
                    },
                },
            )
        return reply(h, 404, {"error": "not found"})

    # Vimeo API v2 (OAuth1, streaming upload)

    def vimeo_v2(self, h: Any, method: str, path: str, query: dict, body: bytes) -> None:
        if path.startswith("/v2upload/"):
            session = self.sessions.get(path.removeprefix("/v2upload/"))
            if session is None:
                return reply(h, 404, None)
            spec = h.headers.get("Content-Range", "").removeprefix("bytes ")
            session["size"] = int(spec.rsplit("/", 1)[1])
            if not spec.startswith("*"):
                first = int(spec.split("-")[0])
                if first != len(session["data"]):
                    return reply(h, 400, None)
                self.flaky("vimeo-v2", session, body)
                session["data"] += body
            held = len(session["data"])
            return reply(
                h, 200 if held >= session["size"] else 308, None, {"Range": f"bytes=0-{held - 1}"} if held else {}
            )
        auth = h.headers.get("Authorization", "")
        oauth = dict(utils.parse_authorization_header(auth)) if auth.startswith("OAuth ") else {}
        if oauth.get("oauth_consumer_key") != V2_CONSUMER[0]:
            return reply(h, 200, v2_fail("401", "Invalid consumer key", "The consumer key passed was not valid."))
        if not self.v2_signature_ok(h, auth, oauth):
            return reply(h, 200, v2_fail("401", "Invalid signature", "The oauth_signature passed was not valid."))
        token = oauth.get("oauth_token", "")
        if kind_of(token) == "expired":
            return reply(
                h, 200, v2_fail("401", "Invalid token", "The oauth_token passed was either not valid or has expired.")
            )
        method_name = query.get("method")
        if method_name == "vimeo.videos.upload.getQuota":
            free = 1000 if kind_of(token) == "noquota" else VIMEO_SPACE
            return reply(h, 200, {"stat": "ok", "user": {"upload_space": {"free": str(free), "max": str(VIMEO_SPACE)}}})
        if method_name == "vimeo.videos.upload.getTicket":
            sid = uuid.uuid4().hex
            self.sessions[sid] = {"token": token, "size": None, "data": bytearray(), "meta": {}}
            return reply(
                h,
                200,
                {
                    "stat": "ok",
                    "ticket": {
                        "id": sid,
                        "endpoint": f"http://{h.headers['Host']}/v2upload/{sid}",
                        "max_file_size": str(VIMEO_SPACE),
                    },
                },
            )
        if method_name == "vimeo.videos.upload.complete":
            session = self.sessions[query["ticket_id"]]
            session["meta"]["filename"] = query.get("filename")
            self.v2_video = session
            return reply(h, 200, {"stat": "ok", "ticket": {"id": query["ticket_id"], "video_id": "777"}})
        if method_name in ("vimeo.videos.setTitle", "vimeo.videos.setDescription"):
            field = "title" if method_name.endswith("Title") else "description"
            self.v2_video["meta"][field] = query.get(field)
            self.done("vimeo-v2", self.v2_video)
            return reply(h, 200, {"stat": "ok"})
        return reply(h, 200, v2_fail("301", "Method not found", "The method passed does not exist."))

    def v2_signature_ok(self, h: Any, auth: str, oauth: dict) -> bool:
        """Recomputes the OAuth1 HMAC-SHA1 signature of the request, as Vimeo would."""
        parts = urlsplit(h.path)
        params = signature.collect_parameters(uri_query=parts.query, headers={"Authorization": auth})
        base = signature.signature_base_string(
            "GET",
            signature.base_string_uri(f"http://{h.headers['Host']}{parts.path}"),
            signature.normalize_parameters(params),
        )
        secrets = SimpleNamespace(client_secret=V2_CONSUMER[1], resource_owner_secret=V2_TOKEN_SECRET)
        expected = signature.sign_hmac_sha1_with_client(base, secrets)
        return utils.unescape(oauth.get("oauth_signature", "")) == expected or oauth.get("oauth_signature") == expected


def kind_of(token: str) -> str:
    return token.split("-", 1)[0]


class _Dropped(Exception):
    """Close the connection without an answer."""


def reply(h: Any, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
    data = b"" if body is None else json.dumps(body).encode()
    h.send_response(status)
    if body is not None:
        h.send_header("Content-Type", "application/json; charset=UTF-8")
    for name, value in (headers or {}).items():
        h.send_header(name, value)
    h.send_header("Content-Length", str(len(data)))
    h.end_headers()
    if h.command != "HEAD":
        h.wfile.write(data)


def google_error(code: int, message: str, reason: str) -> dict:
    return {
        "error": {
            "code": code,
            "message": message,
            "errors": [{"domain": "youtube", "reason": reason, "message": message}],
        }
    }


def fb_error(message: str, kind: str, code: int, data: dict | None = None) -> dict:
    error: dict[str, Any] = {"message": message, "type": kind, "code": code, "fbtrace_id": "AbCdEf"}
    if data:
        error["error_data"] = data
    return {"error": error}


def v2_fail(code: str, msg: str, expl: str) -> dict:
    return {"stat": "fail", "err": {"code": code, "msg": msg, "expl": expl}}


def parse_form(content_type: str, body: bytes) -> dict[str, Any]:
    """application/x-www-form-urlencoded or multipart/form-data (files as bytes)."""
    if content_type.startswith("multipart/form-data"):
        message = email.message_from_bytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + body, policy=email.policy.HTTP
        )
        form: dict[str, Any] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            assert isinstance(name, str) and isinstance(payload, bytes)  # a named field with a body
            form[name] = payload if part.get_filename() else payload.decode()
        return form
    return dict(parse_qsl(body.decode()))
