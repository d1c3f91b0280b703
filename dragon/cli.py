"""The ``dragon`` command: run the service, manage accounts, run batches; the commands
that call a running service over HTTP are in :mod:`dragon.cli_client`.

Only the HTTP commands work in a client-only install (``pip install dragon-tasks``, no
``server`` extra): every server module is imported inside the command that needs it, so
``dragon create ...`` starts without Ray, and the others say which extra they need.
"""

from __future__ import annotations

import importlib.util
import json
import signal
import time
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from dragon import cli_client

if TYPE_CHECKING:
    from dragon.config import Settings
    from dragon.journal import Journal

SERVER_MODULES = ("ray", "pydantic_settings", "av", "torch")  # a few the `server` extra brings
LEASE_EXIT_CODE = 3  # `dragon serve`: another head holds the journal's lease (docs/deployment.md)
LEASE_CHECK_INTERVAL = 2.0  # seconds between looks at whether this head still holds it


def _require_server() -> None:
    """One line instead of an ImportError in a client-only install."""
    missing = [m for m in SERVER_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise click.ClickException(
            f"this command needs the server ({', '.join(missing)} not installed): pip install 'dragon-tasks[server]'"
        )


def _settings(**overrides: Any) -> Settings:
    """Settings for the commands that run the service or read its data."""
    _require_server()
    from dragon.config import Settings, prepare_ray_environment

    prepare_ray_environment()
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _journal(settings: Settings) -> Journal:
    """The journal of a service that has run: a read never creates an empty data dir,
    which would look like a service without accounts."""
    from dragon.journal import open_journal

    if not settings.journal_dsn and not settings.journal_path.exists():
        raise click.ClickException(
            f"no Dragon data in {settings.data_dir.absolute()}: run `dragon serve` first, or name the data dir "
            "of the service with --data-dir (or DRAGON_DATA_DIR)"
        )
    return open_journal(settings)


@click.group()
@click.version_option(package_name="dragon-tasks", prog_name="dragon", message="%(prog)s %(version)s")
def main() -> None:
    """Dragon: the Stupeflix Tasks API v2 on Ray."""


@main.command()
@click.option("--host", help="Interface to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default 8000).")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    help="Journal and files (default $XDG_DATA_HOME/dragon, i.e. ~/.local/share/dragon).",
)
@click.option("--address", "ray_address", help="Deploy onto this running Ray cluster instead of a local one.")
@click.option(
    "--allow-private-urls",
    is_flag=True,
    default=None,
    help="Let tasks read loopback and private addresses (local development only: never on a public service).",
)
def serve(
    host: str | None, port: int | None, data_dir: Path | None, ray_address: str | None, allow_private_urls: bool | None
) -> None:
    """Start Ray (or join a cluster), deploy the service and serve until stopped."""
    settings = _settings(
        host=host, port=port, data_dir=data_dir, ray_address=ray_address, allow_private_urls=allow_private_urls
    )
    from dragon import runtime
    from dragon.actors.control import LeaseHeldError
    from dragon.journal import describe_journal

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    created = runtime.ensure_dev_account(settings)
    runtime.start_ray(settings)
    try:
        runtime.start_actors(settings)
    except LeaseHeldError as exc:
        _leave(settings, str(exc))
    settings.ray_address_file.write_text(runtime.ray_address() + "\n")  # for dragon batch and dragon.connect()
    runtime.deploy(settings)
    runtime.wait_until_ready(settings)
    click.echo(f"Ray cluster: {runtime.ray_address()}")
    click.echo(f"Journal: {describe_journal(settings)}")
    click.echo(f"Dragon is serving on http://{settings.host}:{settings.port} (data in {settings.data_dir.absolute()})")
    if created:
        _announce(runtime.DEV_ACCOUNT, *created)
    if ray_address:
        return
    stopping: list[int] = []  # set from a signal handler: no locks there
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _: stopping.append(signum))
    checked = time.monotonic()
    while not stopping:
        time.sleep(0.2)
        if time.monotonic() - checked > LEASE_CHECK_INTERVAL:
            checked = time.monotonic()
            if lost := runtime.lease_lost(settings):
                _leave(settings, lost)
    click.echo("Stopping: tasks that have not ended will run again at the next start.")
    settings.ray_address_file.unlink(missing_ok=True)  # the local cluster goes with this process
    runtime.shutdown(settings)


def _leave(settings: Settings, reason: str) -> NoReturn:
    """Another head owns the journal's queue: say so, stop this one, exit LEASE_EXIT_CODE."""
    from dragon import runtime

    click.echo(f"dragon serve: {reason}", err=True)
    if settings.recorded_ray_address() == runtime.ray_address():  # not another head's, on the same data dir
        settings.ray_address_file.unlink(missing_ok=True)
    runtime.shutdown(settings)
    raise SystemExit(LEASE_EXIT_CODE)


def _announce(account: str, secret: str, webhook_secret: str) -> None:
    """The only time the development secrets are shown: last, framed, with their use."""
    rule = "=" * 72
    click.secho(f"\n{rule}", bold=True)
    click.secho(f"Created the development account '{account}'. Its secret, shown only this once:\n", bold=True)
    click.secho(f"    {secret}\n", bold=True, fg="green")
    click.echo(f"For the dragon commands:  export DRAGON_SECRET={secret}")
    click.echo(f"A new secret at any time: dragon accounts rotate {account}")
    click.echo(f"Callbacks are signed (Standard Webhooks) with {webhook_secret}")
    click.echo(f"A new signing secret:     dragon accounts rotate-webhook-secret {account}")
    click.secho(rule, bold=True)


@main.group()
def accounts() -> None:
    """Create, list, rotate and delete accounts (in the journal: $DRAGON_JOURNAL_DSN, else --data-dir's)."""


@accounts.command("create")
@click.argument("name")
@click.option("--secret", help="Use this secret instead of a random one.")
@click.option("--api-key", help="Use this api key instead of a random one.")
@click.option("--referrer", multiple=True, help="Referer pattern allowed with the api key (glob, repeatable).")
@click.option("--max-concurrent-tasks", type=int)
@click.option("--max-queued-tasks", type=int)
@click.option("--data-dir", type=click.Path(path_type=Path))
def accounts_create(
    name: str,
    secret: str | None,
    api_key: str | None,
    referrer: tuple[str, ...],
    max_concurrent_tasks: int | None,
    max_queued_tasks: int | None,
    data_dir: Path | None,
) -> None:
    """Create (or replace) an account and print it with its credentials, once."""
    settings = _settings(data_dir=data_dir)
    from dragon.accounts import Account, digest, new_api_key, new_secret
    from dragon.journal import open_journal
    from dragon.status import now_iso
    from dragon.storage.paths import ACCOUNT_NAME

    if not ACCOUNT_NAME.match(name):
        raise click.BadParameter("letters, digits, '_', '.' and '-' only, at most 64", param_hint="NAME")
    from dragon import webhooks

    secret = secret or new_secret()
    api_key = api_key or new_api_key()
    webhook_secret = webhooks.new_secret()
    with closing(open_journal(settings)) as journal:
        journal.put_account(
            Account(
                name=name,
                secret_hash=digest(secret),
                api_key_hash=digest(api_key),
                referrers=referrer,
                max_concurrent_tasks=max_concurrent_tasks or settings.default_max_concurrent_tasks,
                max_queued_tasks=max_queued_tasks or settings.default_max_queued_tasks,
                created_at=now_iso(),
                webhook_secret=webhook_secret,
            )
        )
    click.echo(
        json.dumps(
            {
                "name": name,
                "secret": secret,
                "api_key": api_key,
                "referrers": list(referrer),
                "webhook_secret": webhook_secret,
            }
        )
    )


@accounts.command("list")
@click.option("--data-dir", type=click.Path(path_type=Path))
def accounts_list(data_dir: Path | None) -> None:
    """Print every account (never its credentials) as JSON."""
    with closing(_journal(_settings(data_dir=data_dir))) as journal:
        click.echo(json.dumps([a.public() for a in journal.accounts()], indent=2))


@accounts.command("delete")
@click.argument("name")
@click.option("--data-dir", type=click.Path(path_type=Path))
def accounts_delete(name: str, data_dir: Path | None) -> None:
    """Delete an account; its credentials stop working within seconds."""
    with closing(_journal(_settings(data_dir=data_dir))) as journal:
        deleted = journal.delete_account(name)
    if not deleted:
        raise click.ClickException(f"no account named {name!r}")
    click.echo(json.dumps({"deleted": name}))


@accounts.command("rotate")
@click.argument("name")
@click.option("--secret", help="Use this secret instead of a random one.")
@click.option("--data-dir", type=click.Path(path_type=Path))
def accounts_rotate(name: str, secret: str | None, data_dir: Path | None) -> None:
    """Give an account a new secret and print it, once; the old one stops working
    within seconds. Its api key, limits and files stay."""
    from dataclasses import replace

    from dragon.accounts import digest, new_secret

    with closing(_journal(_settings(data_dir=data_dir))) as journal:
        account = journal.account(name)
        if account is None:
            raise click.ClickException(f"no account named {name!r}")
        secret = secret or new_secret()
        journal.put_account(replace(account, secret_hash=digest(secret)))
    click.echo(json.dumps({"name": name, "secret": secret}))


@accounts.command("rotate-webhook-secret")
@click.argument("name")
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=86400.0,
    show_default=True,
    help="Seconds the current signing secret keeps signing callbacks beside the new one.",
)
@click.option("--data-dir", type=click.Path(path_type=Path))
def accounts_rotate_webhook_secret(name: str, grace: float, data_dir: Path | None) -> None:
    """Give an account a new webhook signing secret and print it, once. Callbacks are
    signed with both the new and the current one for --grace seconds, so receivers can
    switch to the new one without rejecting a callback."""
    from dragon import webhooks

    with closing(_journal(_settings(data_dir=data_dir))) as journal:
        account = journal.account(name)
        if account is None:
            raise click.ClickException(f"no account named {name!r}")
        rotated = account.with_new_webhook_secret(webhooks.new_secret(), grace, time.time())
        journal.put_account(rotated)
    click.echo(
        json.dumps(
            {
                "name": name,
                "webhook_secret": rotated.webhook_secret,
                "previous_valid_until": rotated.previous_webhook_secret_until or None,
            }
        )
    )


@main.command()
@click.argument("task_name")
@click.option(
    "--input",
    "manifest",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Manifest: .parquet, .csv or .jsonl, one row per item (at least url).",
)
@click.option(
    "--output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Results directory (created): one Parquet part per 1000 rows, read as one table by pandas, pyarrow "
    "or dragon.batches.read_results.",
)
@click.option(
    "--param", "params", multiple=True, metavar="K=V", help="A parameter for every row (V as JSON if it parses)."
)
@click.option("--account", default="dev", show_default=True, help="Account whose store receives the outputs.")
@click.option(
    "--address",
    "ray_address",
    help="The service's Ray cluster (default: the one `dragon serve` recorded in its data dir, else auto).",
)
@click.option("--concurrency", type=int, help="Most rows running at once (default: as the cluster's CPUs allow).")
@click.option(
    "--part-rows", type=int, help="Rows per results part (default 1000); an interruption loses at most one part."
)
@click.option("--json", "as_json", is_flag=True, help="Print the final counts as JSON, without a progress bar.")
def batch(
    task_name: str,
    manifest: Path,
    output: Path,
    params: tuple[str, ...],
    account: str,
    ray_address: str | None,
    concurrency: int | None,
    part_rows: int | None,
    as_json: bool,
) -> None:
    """Run TASK_NAME over every row of a manifest; re-running resumes."""
    _require_server()
    from dragon import handles

    fixed = dict(cli_client.assignment(p) for p in params)
    bar: Any = None
    shown = 0

    def show(progress: Any) -> None:
        nonlocal bar, shown
        if as_json:
            return
        if bar is None:
            bar = click.progressbar(length=progress.total, label=task_name, show_pos=True, show_eta=True)
            bar.__enter__()
        now = progress.done + progress.skipped
        bar.update(now - shown)
        shown = now

    try:
        # Absolute before Ray sees them: Ray Data reads the manifest in workers whose
        # working directory is not this one.
        result = handles.batch(
            task_name,
            manifest.absolute(),
            output.absolute(),
            fixed,
            account=account,
            address=ray_address,
            on_progress=show,
            concurrency=concurrency,
            part_rows=part_rows,
        )
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    if as_json:
        click.echo(json.dumps(result.as_dict()))
    else:
        click.echo(
            f"{result.total} rows: {result.done - result.failed} succeeded, {result.failed} failed, "
            f"{result.skipped} done before; results in {output}"
        )


cli_client.register(main)


@main.command("sxml", context_settings={"ignore_unknown_options": True, "help_option_names": []}, add_help_option=False)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def sxml(args: tuple[str, ...]) -> None:
    """Check a video.create definition offline and print it with when every node plays."""
    _require_server()
    from dragon import cli_sxml

    cli_sxml.sxml.main(list(args), prog_name="dragon sxml")


if __name__ == "__main__":
    main()
