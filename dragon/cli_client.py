"""``dragon`` commands that talk to a running service over HTTP (dragon.client):
create, status, watch, cancel, tasks, upload, files, expiration.

Where the service is and who calls: ``--url`` (``DRAGON_URL``, default
http://127.0.0.1:8000) and ``--secret`` (``DRAGON_SECRET``) or ``--api-key``
(``DRAGON_API_KEY``); ``status`` and ``watch`` need neither, as their routes do not.
``--json`` prints machine-readable output and no progress bars; ``--timeout`` and
``--retries`` (``DRAGON_TIMEOUT``, ``DRAGON_RETRIES``) tune the client.

Exit codes tell a script what went wrong without parsing text, and a failure is one line
on stderr, never a traceback:

- 0: done; 1: a task the command waited for ended in error (:data:`EX_TASK_FAILED`);
- 2: the command line is wrong (click's usage errors);
- 3: the API refused the request, e.g. bad credentials or parameters (:data:`EX_API_REFUSED`);
- 69: the service cannot be reached or stayed unavailable (EX_UNAVAILABLE of sysexits.h).
"""

from __future__ import annotations

import functools
import json
import re
import sys
from collections.abc import Callable, Iterable
from datetime import timedelta
from typing import Any

import click
import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from dragon.client import ApiError, Client, Status, UnavailableError

console = Console(stderr=True)
EX_TASK_FAILED = 1
EX_API_REFUSED = 3
EX_UNAVAILABLE = 69  # sysexits.h: "a service is unavailable"
# GET/POST /v2/status and /v2/status_stream take no credentials, but Client insists on
# one: without the caller's, these commands send this one, which those routes ignore.
ANONYMOUS = "anonymous"
REFERENCE = re.compile(r"@([0-9]+|[A-Z2-7]{26})(?::([A-Za-z_][A-Za-z0-9_]*))?")


def connection(command: Callable | None = None, *, credentials: bool = True) -> Callable:
    """The options every client command takes, turned into a ``client`` argument."""
    if command is None:
        return functools.partial(connection, credentials=credentials)

    @click.option("--url", envvar="DRAGON_URL", default="http://127.0.0.1:8000", show_default=True, help="The service.")
    @click.option("--secret", envvar="DRAGON_SECRET", help="The account's secret (or DRAGON_SECRET).")
    @click.option("--api-key", envvar="DRAGON_API_KEY", help="An api key instead of the secret.")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output, no progress bars.")
    @click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        envvar="DRAGON_TIMEOUT",
        help="Seconds each request may take (or DRAGON_TIMEOUT; default 660).",
    )
    @click.option(
        "--retries",
        type=click.IntRange(min=0),
        envvar="DRAGON_RETRIES",
        help="Tries after the first when the service is busy or unreachable (or DRAGON_RETRIES; default 5).",
    )
    @functools.wraps(command)
    def wrapper(
        url: str,
        secret: str | None,
        api_key: str | None,
        as_json: bool,
        timeout: float | None,
        retries: int | None,
        **kwargs: Any,
    ) -> None:
        if not secret and not api_key:
            if credentials:
                raise click.UsageError("give --secret (or DRAGON_SECRET) or --api-key")
            api_key = ANONYMOUS
        with Client(url, secret=secret, api_key=api_key, timeout=timeout, retries=retries) as client:
            try:
                command(client=client, as_json=as_json, **kwargs)
            except UnavailableError as exc:
                click.echo(f"dragon: the service at {url} is unavailable ({exc})", err=True)
                sys.exit(EX_UNAVAILABLE)
            except ApiError as exc:
                click.echo(f"dragon: {exc}", err=True)
                sys.exit(EX_API_REFUSED)
            except httpx.TransportError as exc:
                click.echo(
                    f"dragon: the service at {url} is not reachable ({exc or type(exc).__name__}); "
                    "start it with `dragon serve`, or give its URL with --url or DRAGON_URL",
                    err=True,
                )
                sys.exit(EX_UNAVAILABLE)

    return wrapper


def register(main: click.Group) -> None:
    for command in (create, status, watch, cancel, tasks, upload, expiration):
        main.add_command(command)
    main.add_command(files)


@click.command()
@click.argument("task_name")
@click.argument("params", nargs=-1, metavar="[K=V]... [+ TASK_NAME [K=V]...]...")
@click.option("--store", help='task_store as JSON, e.g. \'{"type": "volatile"}\'.')
@click.option("--wait", is_flag=True, help="Follow the tasks until they end, with progress bars.")
@connection
def create(
    client: Client, as_json: bool, task_name: str, params: tuple[str, ...], store: str | None, wait: bool
) -> None:
    """Create a task: dragon create image.thumb url=https://... width=200 --wait.

    A pipeline in one request: tasks separated by ``+``, where V = @N is the output of the
    request's task N (@N:NAME its file result NAME) and @KEY that of an earlier task:
    dragon create video.convert url=https://... + video.thumb url=@0 + video.strip url=@0
    """
    definitions = []
    for words in _tasks([task_name, *params]):
        definition: dict[str, Any] = {"task_name": words[0], **dict(assignment(p) for p in words[1:])}
        if store:
            definition["task_store"] = json.loads(store)
        definitions.append(definition)
    created = client.create(definitions)
    if not wait:
        emit(created, as_json)
        return
    finished = follow(client, [s.key for s in created], as_json)
    emit(finished, as_json)
    sys.exit(EX_TASK_FAILED if any(s.status == "error" for s in finished) else 0)


@click.command()
@click.argument("keys", nargs=-1, required=True)
@click.option("--details", is_flag=True, help="Add each task's definition (credentials redacted).")
@connection(credentials=False)
def status(client: Client, as_json: bool, keys: tuple[str, ...], details: bool) -> None:
    """Show the statuses of tasks."""
    emit(client.status(list(keys), details=details), as_json)


@click.command()
@click.argument("keys", nargs=-1, required=True)
@connection(credentials=False)
def watch(client: Client, as_json: bool, keys: tuple[str, ...]) -> None:
    """Follow tasks live (a progress bar each) until all have ended."""
    finished = follow(client, list(keys), as_json)
    emit(finished, as_json)
    sys.exit(EX_TASK_FAILED if any(s.status == "error" for s in finished) else 0)


@click.command()
@click.argument("keys", nargs=-1, required=True)
@connection
def cancel(client: Client, as_json: bool, keys: tuple[str, ...]) -> None:
    """Cancel queued or executing tasks."""
    answer = client.cancel(list(keys))
    if as_json:
        click.echo(json.dumps(answer))
        return
    for key in answer["canceled"]:
        click.echo(f"{key} canceled")
    for key in answer["already_ended"]:
        click.echo(f"{key} had already ended")


@click.command()
@click.option(
    "--status",
    "states",
    multiple=True,
    type=click.Choice(["queued", "executing", "success", "error"]),
    help="Only tasks in this state (repeatable).",
)
@click.option("--task-name", help="Only tasks of this type.")
@click.option("--since", help="Created since: an ISO 8601 date, or an age such as 30m, 1h, 2d.")
@click.option("--until", help="Created before: an ISO 8601 date, or an age.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="At most this many tasks.")
@connection
def tasks(
    client: Client,
    as_json: bool,
    states: tuple[str, ...],
    task_name: str | None,
    since: str | None,
    until: str | None,
    limit: int,
) -> None:
    """The account's tasks, newest first: dragon tasks --status error --since 1h."""
    found = client.tasks(
        status=states or None, task_name=task_name, since=moment(since), until=moment(until), page_size=min(limit, 1000)
    )
    listed = [status for _, status in zip(range(limit), found)]
    if as_json:
        emit(listed, as_json)
        return
    for s in listed:
        ended = s.events.get(s.status, "") if s.ended else ""
        what = s.error if s.status == "error" else ""
        click.echo(
            "\t".join(
                [
                    s.key,
                    s.status,
                    s.events.get("queued", ""),
                    ended,
                    what if isinstance(what, str) else json.dumps(what),
                ]
            ).rstrip("\t")
        )


AGE = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def moment(text: str | None) -> timedelta | str | None:
    """``1h`` (an age) as a timedelta; anything else is passed on as a date for the service to judge."""
    if text is None:
        return None
    age = AGE.match(text.strip())
    return timedelta(**{UNITS[age.group(2)]: float(age.group(1))}) if age else text


@click.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@connection
def upload(client: Client, as_json: bool, path: str) -> None:
    """Put a local file in the account's storage; prints a URL to use as a task input."""
    if as_json:
        url = client.upload(path)
    else:
        with Progress(TextColumn("upload"), BarColumn(), TaskProgressColumn(), console=console) as progress:
            bar = progress.add_task("upload", total=None)
            url = client.upload(path, lambda sent, size: progress.update(bar, completed=sent, total=size))
    click.echo(json.dumps({"url": url}) if as_json else url)


@click.command()
@click.argument("days", type=click.IntRange(min=0), required=False)
@connection
def expiration(client: Client, as_json: bool, days: int | None) -> None:
    """Show, or set with DAYS, how long persistent files are kept (0: forever)."""
    value = client.expiration.get() if days is None else client.expiration.set(days)
    click.echo(json.dumps(value) if as_json else f"{value} days" if value else "files are kept forever")


@click.group()
def files() -> None:
    """Browse and delete stored files."""


@files.command("ls")
@click.argument("path", default="")
@click.option("--recursive", "-r", is_flag=True)
@connection
def files_ls(client: Client, as_json: bool, path: str, recursive: bool) -> None:
    """List files and directories under PATH."""
    listing = client.files.list(path, recursive)
    if as_json:
        click.echo(json.dumps(listing))
        return
    rows = [(d, "", "") for d in listing.get("directories", [])]
    rows += [(f["name"], str(f["size"]), f["last_modified"]) for f in listing.get("files", [])]
    if sys.stdout.isatty():
        table = Table("name", "size", "last modified")
        for row in rows:
            table.add_row(*row)
        Console().print(table)
    else:  # piped: whole names, one per line, tab-separated
        for row in rows:
            click.echo("\t".join(row))
    click.echo(f"usage: {listing.get('usage', 0)} bytes")


@files.command("rm")
@click.argument("path", default="")
@click.option("--file-url", "urls", multiple=True, help="Delete these file URLs (repeatable) instead of PATH.")
@click.option("--dry-run", is_flag=True, help="Only say what would be deleted.")
@connection
def files_rm(client: Client, as_json: bool, path: str, urls: tuple[str, ...], dry_run: bool) -> None:
    """Delete the files under PATH (a directory ends with /), or given URLs."""
    if not path and not urls:
        raise click.UsageError("give a PATH or --file-url (the account's root is never deleted by default)")
    selection: dict[str, Any] = {"dry_run": dry_run}
    if urls:
        selection["urls"] = list(urls)
    answer = client.files.delete("" if urls else path, **selection)
    click.echo(json.dumps(answer) if as_json else "\n".join(answer.get("deleted", [])) or "nothing deleted")


def follow(client: Client, keys: list[str], as_json: bool) -> list[Status]:
    """Statuses from the stream until all have ended, drawn as progress bars."""
    if as_json:
        for _ in client.stream(keys):
            pass
        return client.status(keys)
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[state]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as progress:
        bars = {key: progress.add_task(key, total=100, state="queued") for key in keys}
        for change in client.stream(keys):
            done = 100 if change.status == "success" else change.progress
            progress.update(
                bars[change.key], state=change.status, completed=done if isinstance(done, (int, float)) else None
            )
    return client.status(keys)


def emit(statuses: Iterable[Status], as_json: bool) -> None:
    statuses = list(statuses)
    if as_json:
        click.echo(json.dumps([s.model_dump(exclude_none=True) for s in statuses]))
        return
    for s in statuses:
        click.echo(f"{s.key} {s.status}")
        if s.status == "success" and s.result is not None:
            click.echo(json.dumps(s.result, indent=2))
        if s.status == "error":
            click.echo(json.dumps(s.error) if not isinstance(s.error, str) else s.error)
        if s.details:
            click.echo(json.dumps(s.details, indent=2))


def _tasks(words: list[str]) -> list[list[str]]:
    """``TASK K=V... + TASK K=V...``: the words of each task."""
    tasks: list[list[str]] = [[]]
    for word in words:
        if word == "+":
            tasks.append([])
        else:
            tasks[-1].append(word)
    if any(not task or "=" in task[0] for task in tasks):
        raise click.BadParameter("each task after a '+' starts with its task name")
    return tasks


def assignment(text: str) -> tuple[str, Any]:
    """``K=V``; V is read as JSON when it parses (numbers, booleans, lists), else text.
    ``@N``, ``@N:NAME`` and ``@KEY`` are references to other tasks' outputs; any other
    ``K=@FILE`` reads V from the file (an SXML movie, a JSON list), ``-`` being stdin;
    a text that starts with ``@`` is written as a JSON string: ``K='"@text"'``."""
    if "=" not in text:
        raise click.BadParameter(f"{text!r} is not K=V")
    name, value = text.split("=", 1)
    reference = REFERENCE.fullmatch(value)
    if reference:
        task, result = reference.group(1), reference.group(2)
        return name, {"task": int(task) if task.isdigit() else task, **({"result": result} if result else {})}
    if value.startswith("@"):
        try:
            with click.open_file(value[1:], encoding="utf-8") as f:
                value = f.read()
        except (OSError, UnicodeDecodeError) as exc:
            raise click.BadParameter(f"{name}=@{value[1:]}: cannot read the file ({exc})") from None
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value
