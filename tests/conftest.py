"""One real Dragon service per test session: `dragon serve` on a local Ray cluster,
spoken to over HTTP on a free loopback port.

Its journal is SQLite in its data dir, or PostgreSQL with ``--journal=postgres`` (or
``DRAGON_TEST_JOURNAL=postgres``): the whole suite then runs on a throwaway cluster."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.platforms import Platforms
from tests.support.servers import Origin, PostgresServer, SeaweedS3
from tests.support.service import ROOT, DragonProcess

# The test media (README.md, "Test media"): real files with their provenance and measured
# reference values, kept outside the repository.
MEDIA = Path(os.environ.get("DRAGON_TEST_MEDIA") or ROOT.parent / "shared" / "media").absolute()
__all__ = ["ROOT", "MEDIA", "DragonProcess"]


def pytest_configure(config: pytest.Config) -> None:
    """Before collection, which reads reference values from the media: one clear message."""
    if not (MEDIA / "README.md").is_file():
        raise pytest.UsageError(
            f"the test media are not in {MEDIA}: set DRAGON_TEST_MEDIA to the folder that holds them "
            "(README.md, 'Test media', says what they are and where they come from)"
        )


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--journal",
        choices=("sqlite", "postgres"),
        default=os.environ.get("DRAGON_TEST_JOURNAL", "sqlite"),
        help="Journal of the session's services (default: $DRAGON_TEST_JOURNAL or sqlite).",
    )


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster; each journal gets a database of its own."""
    server = PostgresServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def journal_env(request: pytest.FixtureRequest) -> Any:
    """Environment that gives a new service its own journal, as --journal chooses."""

    def env() -> dict[str, str]:
        if request.config.getoption("journal") == "postgres":
            return {"DRAGON_JOURNAL_DSN": request.getfixturevalue("postgres").new_database()}
        return {}

    return env


@pytest.fixture(scope="session")
def platforms() -> Iterator[Platforms]:
    """Local YouTube, Facebook and Vimeo that the service uploads to."""
    server = Platforms()
    yield server
    server.close()


def service_env(platforms: Platforms) -> dict[str, str]:
    """The environment of a test service, short timeouts included; its journal is added by the caller."""
    return {
        **os.environ,
        **platforms.settings(),
        "DRAGON_UPLOAD_CHUNK_BYTES": str(256 * 1024),  # several chunks per test video
        "RAY_AUTH_MODE": "disabled",
        "PYTHONPATH": str(ROOT),
        "DRAGON_TASK_MODULES": "tests.support.tasks",
        "DRAGON_ALLOW_PRIVATE_URLS": "1",
        "DRAGON_BLOCK_TIMEOUT": "8",
        "DRAGON_SHARDS": "2",  # exercise routing by key and limits across shards
        "DRAGON_STREAM_POLL_TIMEOUT": "2",
        "DRAGON_SWEEP_INTERVAL": "1",
        "DRAGON_VOLATILE_DAYS": "0.0001",  # about 9 s, so the sweeper can be seen at work
        "DRAGON_FETCH_READ_TIMEOUT": "3",
        "DRAGON_FETCH_TOTAL_TIMEOUT": "6",
        "DRAGON_CALLBACK_BACKOFF": "0.2",
        "DRAGON_CALLBACK_BACKOFF_MAX": "1",
        "DRAGON_CALLBACK_RETRY_PERIOD": "60",
    }


@pytest.fixture(scope="session")
def dragon(tmp_path_factory: pytest.TempPathFactory, platforms: Platforms, journal_env: Any) -> Iterator[DragonProcess]:
    base = tmp_path_factory.mktemp("dragon")
    env = {**service_env(platforms), **journal_env()}
    service = DragonProcess(base / "data", env)
    service.start()
    try:
        yield service
    finally:
        if service.proc is not None:
            service.stop()


class Api:
    """Thin HTTP helpers; tests still see raw responses where the format matters."""

    def __init__(self, url: str, secret: str, process: DragonProcess | None = None):
        self.url = url
        self.secret = secret
        self.process = process
        self.http = httpx.Client(base_url=url, timeout=60)

    def create(self, tasks: Any, block: bool = False, **extra: Any) -> list[dict[str, Any]]:
        r = self.http.post("/v2/create", json={"secret": self.secret, "tasks": tasks, "block": block, **extra})
        assert r.status_code == 200, r.text
        return r.json()

    def run(self, task: dict[str, Any]) -> dict[str, Any]:
        """One task, created with block=true: its final status."""
        [status] = self.create(task, block=True)
        return status

    def result(self, task: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """One task that must succeed: its result. With ``timeout``, waited for that long
        (a blocking create answers after the service's block cap, 8 s here)."""
        if timeout is None:
            status = self.run(task)
        else:
            [queued] = self.create(task)
            [status] = self.wait([queued["key"]], timeout)
        assert status["status"] == "success", status.get("error")
        return status["result"]

    def status(self, keys: list[str], **params: Any) -> list[dict[str, Any]]:
        r = self.http.get("/v2/status", params={"tasks": keys, **params})
        assert r.status_code == 200, r.text
        return r.json()

    def wait(self, keys: list[str], timeout: float = 60) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            statuses = self.status(keys, block="true")
            if all(s["status"] in ("success", "error") for s in statuses) or time.monotonic() > deadline:
                return statuses

    def wait_for(self, key: str, state: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            [status] = self.status([key])
            if status["status"] == state:
                return status
            time.sleep(0.05)
        raise TimeoutError(f"{key} never reached {state}")


@pytest.fixture(scope="session")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Origin]:
    server = Origin(tmp_path_factory.mktemp("origin"))
    yield server
    server.close()


@pytest.fixture(scope="session")
def media() -> Iterator[Origin]:
    """The test media (MEDIA) served read-only on loopback."""
    server = Origin(MEDIA)
    yield server
    server.close()


@pytest.fixture(scope="session")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    server = SeaweedS3(tmp_path_factory.mktemp("seaweed"))
    yield server
    server.close()


@pytest.fixture(scope="session")
def guarded(
    tmp_path_factory: pytest.TempPathFactory, dragon: DragonProcess, s3: SeaweedS3, journal_env: Any
) -> Iterator[Api]:
    """A second service with the production defaults: private addresses refused,
    outputs on S3 (SeaweedFS)."""
    env = {
        **{k: v for k, v in dragon.env.items() if k != "DRAGON_TEST_INSTANCE"},
        **journal_env(),
        "DRAGON_ALLOW_PRIVATE_URLS": "0",
        "DRAGON_STORAGE_BACKEND": "s3",
        "DRAGON_S3_ENDPOINT_URL": s3.endpoint,
        "DRAGON_S3_BUCKET": s3.bucket,
        "DRAGON_S3_PREFIX": "outputs",
        "DRAGON_S3_ACCESS_KEY_ID": s3.ACCESS_KEY,
        "DRAGON_S3_SECRET_ACCESS_KEY": s3.SECRET_KEY,
    }
    service = DragonProcess(tmp_path_factory.mktemp("guarded") / "data", env)
    account = service.cli("accounts", "create", "carol")
    service.start()
    yield Api(service.url, account["secret"], service)
    service.stop()


@pytest.fixture(scope="session")
def account(dragon: DragonProcess) -> dict[str, Any]:
    return dragon.cli("accounts", "create", "alice", "--referrer", "https://app.example.com/*")


@pytest.fixture(scope="session")
def api(dragon: DragonProcess, account: dict[str, Any]) -> Api:
    return Api(dragon.url, account["secret"])
