"""dragon.client (sync and async), the upload endpoint, and the HTTP commands of the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from dragon import registry
from dragon.client import ApiError, AsyncClient, Client, Status
from tests.conftest import ROOT, Api, DragonProcess
from tests.support.servers import DroppingProxy, free_port


@pytest.fixture(scope="module")
def client(dragon: DragonProcess, account: dict[str, Any]) -> Iterator[Client]:
    with Client(dragon.url, secret=account["secret"]) as c:
        yield c


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("client") / "holiday photo.jpg"
    Image.new("RGB", (400, 300), (200, 120, 40)).save(path, "JPEG")
    return path


def test_create_wait_and_status_give_typed_statuses(client: Client) -> None:
    created = client.create(
        [{"task_name": "hello", "name": "client"}, {"task_name": "test.steps", "steps": 2, "delay": 0.1}]
    )
    assert all(isinstance(s, Status) for s in created)
    final = client.wait([s.key for s in created])
    assert [s.status for s in final] == ["success", "success"]
    assert final[0].result == "Hello client" and final[1].result == {"steps": 2}
    [detailed] = client.status(created[0].key, details=True)
    assert detailed.details is not None and detailed.details["task_name"] == "hello"


def test_stream_yields_every_change_until_the_end(client: Client) -> None:
    [task] = client.create({"task_name": "test.steps", "steps": 3, "delay": 0.2})
    seen = list(client.stream([task.key]))
    assert seen[-1].status == "success"
    assert [s.progress for s in seen if s.status == "executing" and s.progress is not None] == [33, 67, 100]


def test_a_dropped_stream_resumes_through_status_stream(dragon: DragonProcess, account: dict) -> None:
    proxy = DroppingProxy(dragon.url)
    try:
        with Client(proxy.url, secret=account["secret"]) as through_proxy:
            [task] = through_proxy.create({"task_name": "test.steps", "steps": 3, "delay": 0.3})
            seen = list(through_proxy.stream([task.key]))
        assert proxy.dropped == 1
        assert seen[-1].status == "success" and seen[-1].result == {"steps": 3}
        assert len({json.dumps(s.model_dump(), sort_keys=True) for s in seen}) == len(seen)  # nothing repeated
    finally:
        proxy.close()


def test_create_stream_starts_with_the_created_statuses(client: Client) -> None:
    seen = list(client.create_stream({"task_name": "hello", "name": "s"}))
    assert seen[0].status in ("queued", "executing", "success")
    assert seen[-1].status == "success" and seen[-1].result == "Hello s"


def test_cancel_from_the_client_and_the_cli(
    client: Client, dragon: DragonProcess, account: dict, tmp_path: Path
) -> None:
    [task] = client.create({"task_name": "test.gate", "gate": str(tmp_path / "never")})
    answer = client.cancel(task.key)
    assert answer["canceled"] == [task.key] and answer["statuses"][0]["status"] == "error"
    again = dragon_cli(dragon, account, "cancel", task.key)
    assert again.returncode == 0 and again.stdout.strip() == f"{task.key} had already ended"


def test_api_errors_are_exceptions_with_the_api_fields(dragon: DragonProcess, client: Client) -> None:
    with pytest.raises(ApiError) as refused:
        Client(dragon.url, secret="not-a-secret").create({"task_name": "hello", "name": "x"})
    assert refused.value.status_code == 401 and refused.value.errors[0]["name"] == "secret"
    with pytest.raises(ApiError) as bad:
        client.status(["not a key"])
    assert bad.value.status_code == 400 and bad.value.errors[0]["name"] == "tasks"


def test_uploaded_files_are_task_inputs(client: Client, photo: Path) -> None:
    url = client.upload(photo)
    assert url.endswith(".jpg")
    [done] = client.create({"task_name": "image.info", "url": url}, block=True)
    assert done.status == "success" and (done.result["width"], done.result["height"]) == (400, 300)
    listing = client.files.list(recursive=True)
    assert any(f["name"].endswith(url.rsplit("/", 1)[1]) for f in listing["files"])


def test_uploads_need_the_secret_and_a_body(dragon: DragonProcess, account: dict) -> None:
    r = httpx.post(f"{dragon.url}/v2/storage/upload", content=b"x")
    assert r.status_code == 401
    r = httpx.post(
        f"{dragon.url}/v2/storage/upload", headers={"Authorization": f"secret {account['secret']}"}, content=b""
    )
    assert r.status_code == 400


def test_files_and_expiration(client: Client, photo: Path) -> None:
    url = client.upload(photo)
    name = url.split("/persistent/", 1)[1].split("/", 1)[1]  # KEY/file under the account's root
    assert client.files.delete(name, dry_run=True)["deleted"] == [name]
    assert client.files.delete(name)["deleted"] == [name]
    assert client.files.delete(name)["deleted"] == []
    assert client.expiration.set(30) == 30 and client.expiration.get() == 30
    with pytest.raises(ApiError) as absurd:  # found by the fuzzer: such a date stopped the sweeper
        client.expiration.set(10**12)
    assert absurd.value.status_code == 400 and absurd.value.errors[0]["name"] == "days"
    assert client.expiration.set(0) == 0


def test_the_async_client_does_the_same(dragon: DragonProcess, account: dict, photo: Path) -> None:
    async def scenario() -> tuple[list[Status], list[Status], int, dict]:
        async with AsyncClient(dragon.url, secret=account["secret"]) as c:
            created = await c.create({"task_name": "test.steps", "steps": 2, "delay": 0.1})
            seen = [s async for s in c.stream([created[0].key])]
            url = await c.upload(photo)
            [info] = await c.create({"task_name": "image.info", "url": url}, block=True)
            return seen, await c.wait([created[0].key]), await c.expiration.get(), info.result

    seen, final, days, info = asyncio.run(scenario())
    assert seen[-1].status == "success" and final[0].result == {"steps": 2}
    assert days >= 0 and info["width"] == 400


def dragon_cli(dragon: DragonProcess, account: dict, *args: str) -> subprocess.CompletedProcess:
    env = {**dragon.env, "DRAGON_URL": dragon.url, "DRAGON_SECRET": account["secret"]}
    return subprocess.run(
        [sys.executable, "-m", "dragon", *args], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_cli_create_wait_status_and_watch(dragon: DragonProcess, account: dict, photo: Path) -> None:
    upload = dragon_cli(dragon, account, "upload", str(photo), "--json")
    url = json.loads(upload.stdout)["url"]
    done = dragon_cli(dragon, account, "create", "image.thumb", f"url={url}", "width=50", "--wait", "--json")
    assert done.returncode == 0, done.stderr
    [status] = json.loads(done.stdout)
    assert status["status"] == "success" and status["result"]["width"] == 50
    shown = dragon_cli(dragon, account, "status", status["key"], "--details", "--json")
    assert json.loads(shown.stdout)[0]["details"]["parameters"]["width"] == 50

    created = dragon_cli(dragon, account, "create", "test.steps", "steps=3", "delay=0.2")
    key = created.stdout.split()[0]
    watched = dragon_cli(dragon, account, "watch", key)
    assert watched.returncode == 0 and f"{key} success" in watched.stdout
    assert "100%" in watched.stderr  # the progress bar reached the end

    failed = dragon_cli(dragon, account, "create", "image.info", "url=http://127.0.0.1:9/none.jpg", "--wait")
    assert failed.returncode == 1 and "CouldNotDownloadError" in failed.stdout


def test_cli_files_and_expiration(dragon: DragonProcess, account: dict, photo: Path) -> None:
    url = dragon_cli(dragon, account, "upload", str(photo)).stdout.strip()
    name = url.split("/persistent/", 1)[1].split("/", 1)[1]
    listing = json.loads(dragon_cli(dragon, account, "files", "ls", "--recursive", "--json").stdout)
    assert name in [f["name"] for f in listing["files"]]
    assert name in dragon_cli(dragon, account, "files", "ls", "-r").stdout
    removed = dragon_cli(dragon, account, "files", "rm", "--file-url", url, "--json")
    assert removed.returncode == 0, removed.stderr
    assert json.loads(removed.stdout)["deleted"] == [name]
    assert dragon_cli(dragon, account, "expiration", "7").stdout.strip() == "7 days"
    assert json.loads(dragon_cli(dragon, account, "expiration", "--json").stdout) == 7
    dragon_cli(dragon, account, "expiration", "0")
    assert dragon_cli(dragon, account, "files", "rm").returncode != 0  # never the whole account by default


def test_status_needs_no_secret_and_an_unreachable_service_is_one_line_and_exit_69(
    dragon: DragonProcess, account: dict
) -> None:
    [task] = Client(dragon.url, secret=account["secret"]).create({"task_name": "hello", "name": "anyone"}, block=True)
    env = {k: v for k, v in dragon.env.items() if k not in ("DRAGON_SECRET", "DRAGON_API_KEY")}
    shown = subprocess.run(
        [sys.executable, "-m", "dragon", "status", task.key, "--url", dragon.url, "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)[0]["result"] == "Hello anyone"
    down = f"http://127.0.0.1:{free_port()}"
    for args in (["status", task.key], ["create", "hello", "name=x", "--secret", "s"]):
        refused = subprocess.run(
            [sys.executable, "-m", "dragon", *args, "--url", down],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode == 69, refused.stderr  # EX_UNAVAILABLE
        assert refused.stderr.strip().splitlines() == [refused.stderr.strip()]  # one line, no traceback
        assert f"the service at {down} is not reachable" in refused.stderr


def test_cli_exit_codes_tell_a_failed_task_from_a_refused_call(dragon: DragonProcess, account: dict) -> None:
    failed = dragon_cli(dragon, account, "create", "test.fail", "--wait", "--json")
    assert failed.returncode == 1, failed.stderr  # the call worked, the task did not
    assert json.loads(failed.stdout)[0]["status"] == "error"
    refused = dragon_cli(dragon, account, "create", "hello", "name=x", "--secret", "not-a-secret")
    assert refused.returncode == 3  # the API said no
    assert refused.stderr.strip().splitlines() == [refused.stderr.strip()] and "HTTP 401" in refused.stderr
    unknown = dragon_cli(dragon, account, "status", "not a key")
    assert unknown.returncode == 3 and "HTTP 400" in unknown.stderr
    assert dragon_cli(dragon, account, "create").returncode == 2  # usage


def test_cli_takes_a_parameter_from_a_file_or_stdin(dragon: DragonProcess, account: dict, tmp_path: Path) -> None:
    (tmp_path / "name.txt").write_text("from <a> file")
    done = dragon_cli(dragon, account, "create", "hello", f"name=@{tmp_path / 'name.txt'}", "--wait", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)[0]["result"] == "Hello from <a> file"
    env = {**dragon.env, "DRAGON_URL": dragon.url, "DRAGON_SECRET": account["secret"]}
    piped = subprocess.run(
        [sys.executable, "-m", "dragon", "create", "hello", "name=@-", "--wait", "--json"],
        input="stdin",
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert json.loads(piped.stdout)[0]["result"] == "Hello stdin"
    literal = dragon_cli(dragon, account, "create", "hello", 'name="@home"', "--wait", "--json")
    assert json.loads(literal.stdout)[0]["result"] == "Hello @home"
    missing = dragon_cli(dragon, account, "create", "hello", f"name=@{tmp_path / 'absent'}")
    assert missing.returncode == 2 and "cannot read the file" in missing.stderr


def test_cli_version_is_the_installed_package_version(dragon: DragonProcess, account: dict) -> None:
    from importlib.metadata import version

    shown = dragon_cli(dragon, account, "--version")
    assert shown.returncode == 0 and shown.stdout.strip() == f"dragon {version('dragon-tasks')}"


def test_cli_takes_time_out_and_retries_as_options(dragon: DragonProcess, account: dict) -> None:
    stuck = socket.create_server(("127.0.0.1", 0))  # connections wait in its backlog, never answered
    try:
        started = time.monotonic()
        waited = dragon_cli(
            dragon,
            account,
            "status",
            "k",
            "--url",
            f"http://127.0.0.1:{stuck.getsockname()[1]}",
            "--timeout",
            "0.5",
            "--retries",
            "0",
        )
        assert waited.returncode == 69 and "(timed out)" in waited.stderr
        assert time.monotonic() - started < 20  # the default would be 660 s
    finally:
        stuck.close()


def test_accounts_rotate_gives_a_new_secret_and_the_old_one_stops_working(dragon: DragonProcess) -> None:
    old = dragon.cli("accounts", "create", "rotating")["secret"]
    new = dragon.cli("accounts", "rotate", "rotating")["secret"]
    assert new != old
    deadline = time.monotonic() + 30  # the replicas cache credentials for a few seconds
    with Client(dragon.url, secret=old) as before, Client(dragon.url, secret=new) as after:
        while True:
            try:
                before.create({"task_name": "hello", "name": "old"})
            except ApiError as refused:
                assert refused.status_code == 401
                break
            assert time.monotonic() < deadline, "the old secret still works"
            time.sleep(0.5)
        [done] = after.create({"task_name": "hello", "name": "new"}, block=True)
    assert done.result == "Hello new"
    with pytest.raises(RuntimeError, match="no account named 'nobody'"):
        dragon.cli("accounts", "rotate", "nobody")


def test_commands_that_read_never_create_an_empty_data_dir(dragon: DragonProcess, tmp_path: Path) -> None:
    missing = tmp_path / "elsewhere"
    for args in (["accounts", "list"], ["accounts", "delete", "x"], ["accounts", "rotate", "x"]):
        done = subprocess.run(
            [sys.executable, "-m", "dragon", *args, "--data-dir", str(missing)],
            env=dragon.env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1 and f"no Dragon data in {missing}" in done.stderr
    assert not missing.exists() and not (tmp_path / "dragon-data").exists()


def test_the_dev_secret_is_the_last_thing_serve_prints(dragon: DragonProcess) -> None:
    serving = next(i for i, line in enumerate(dragon.output) if line.startswith("Dragon is serving on"))
    created = next(i for i, line in enumerate(dragon.output) if line.startswith("Created the development account"))
    assert serving < created
    assert any(
        line.startswith("A new secret at any time: dragon accounts rotate dev") for line in dragon.output[created:]
    )
    signed = [
        line for line in dragon.output[created:] if line.startswith("Callbacks are signed (Standard Webhooks) with")
    ]
    assert len(signed) == 1 and signed[0].split()[-1].startswith("whsec_")


def test_the_client_installs_without_the_server_and_calls_the_service(
    dragon: DragonProcess, account: dict, tmp_path: Path
) -> None:
    """`pip install dragon-tasks` (no extra) into a fresh venv: no Ray, no torch, and the
    HTTP commands and dragon.client work against the running service."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path / "dist"),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    [wheel] = (tmp_path / "dist").glob("dragon_tasks-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    installed = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "-c", str(ROOT / "constraints.txt"), str(wheel)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    python, command = str(venv / "bin" / "python"), str(venv / "bin" / "dragon")
    absent = subprocess.run(
        [
            python,
            "-c",
            "import importlib.util as u; print([m for m in ('ray', 'torch', 'av', "
            "'fastapi', 'pydantic_settings') if u.find_spec(m)])",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert absent.stdout.strip() == "[]"

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [command, *args],
            env={**env, "DRAGON_URL": dragon.url},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )

    assert run("--help").returncode == 0
    created = run("create", "hello", "name=light", "--secret", account["secret"], "--wait", "--json")
    assert created.returncode == 0, created.stderr
    [status] = json.loads(created.stdout)
    assert status["result"] == "Hello light"
    assert json.loads(run("status", status["key"], "--json").stdout)[0]["status"] == "success"
    script = (
        f"from dragon.client import Client\nwith Client({dragon.url!r}, secret={account['secret']!r}) as d:\n"
        "    print(d.create({'task_name': 'hello', 'name': 'py'}, block=True)[0].result)"
    )
    assert (
        subprocess.run([python, "-c", script], env=env, capture_output=True, text=True, timeout=120).stdout.strip()
        == "Hello py"
    )
    server = run("accounts", "list")
    assert server.returncode == 1 and "pip install 'dragon-tasks[server]'" in server.stderr
    assert "Traceback" not in server.stderr


def test_openapi_describes_every_route_and_task(api: Api) -> None:
    from openapi_spec_validator import validate

    doc = api.http.get("/openapi.json").json()
    validate(doc)
    for path in (
        "/v2/create",
        "/v2/create_stream",
        "/v2/status",
        "/v2/status_stream",
        "/v2/stream",
        "/v2/cancel",
        "/v2/batch",
        "/v2/tasks",
        "/v2/storage/files",
        "/v2/storage/expiration",
        "/v2/storage/upload",
    ):
        assert path in doc["paths"], path
    create = doc["paths"]["/v2/create"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert "tasks" in create["required"]
    history = doc["paths"]["/v2/tasks"]["get"]
    assert {p["name"] for p in history["parameters"]} >= {"status", "task_name", "from", "to", "cursor", "limit"}
    assert history["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/HistoryPage")
    schemas = doc["components"]["schemas"]
    names = {s["title"] for k, s in schemas.items() if k.startswith("Task.")}
    assert {"image.thumb", "audio.beats", "video.upload.youtube", "html.scrape", "batch", "hello"} <= names
    thumb = schemas["Task.image.thumb"]
    assert thumb["required"][0] == "task_name" and "url" in thumb["required"] and "width" in thumb["properties"]
    assert api.http.get("/docs").status_code == 200


def test_every_task_parameter_has_a_description_in_openapi_and_docs_tasks_md_is_current(api: Api) -> None:
    schemas = api.http.get("/openapi.json").json()["components"]["schemas"]
    registry.load()
    for name in registry.names():
        if name.startswith("test."):  # the suite's own task types (tests/support), loaded by some tests
            continue
        properties = schemas[f"Task.{name}"]["properties"]
        for field in registry.get(name).params.model_fields:  # type: ignore[union-attr]
            assert properties[field].get("description"), f"{name}.{field}"
    check = subprocess.run([sys.executable, "docs/make_tasks.py", "--check"], cwd=ROOT, capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    assert "| `width` | integer, 1 to 10000 or null | `null` |" in (ROOT / "docs" / "tasks.md").read_text()


def test_the_task_schemas_accept_real_definitions_and_refuse_bad_ones(api: Api) -> None:
    import jsonschema

    doc = api.http.get("/openapi.json").json()
    registry = jsonschema.validators.Draft202012Validator
    resolver_doc = {"components": doc["components"]}

    def valid(definition: dict) -> bool:
        schema = {"$ref": f"#/components/schemas/Task.{definition['task_name']}", **resolver_doc}
        return registry(schema).is_valid(definition)

    assert valid(
        {"task_name": "image.thumb", "url": "http://x/y.jpg", "width": 100, "task_store": {"type": "volatile"}}
    )
    assert valid({"task_name": "video.upload.vimeo", "url": "http://x/v.mp4", "oauth2_token": "t"})
    assert not valid({"task_name": "image.thumb", "width": 100})  # no url
    assert not valid({"task_name": "audio.convert", "url": "http://x/a.mp3", "codec": "flac"})
