"""The ``dragon`` command: run the service, manage accounts, run batches; the commands
that call a running service over HTTP are in :mod:`dragon.cli_client`."""

from __future__ import annotations

import json
import signal
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import click

from dragon import cli_client, cli_sxml
from dragon.config import Settings, prepare_ray_environment


def _settings(**overrides: Any) -> Settings:
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


@click.group()
def main() -> None:
    """Dragon: the Stupeflix Tasks API v2 on Ray."""
    prepare_ray_environment()


@main.command()
@click.option("--host", help="Interface to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Port to listen on (default 8000).")
@click.option("--data-dir", type=click.Path(path_type=Path), help="Journal and files (default ./dragon-data).")
@click.option("--address", "ray_address", help="Deploy onto this running Ray cluster instead of a local one.")
def serve(host: str | None, port: int | None, data_dir: Path | None, ray_address: str | None) -> None:
    """Start Ray (or join a cluster), deploy the service and serve until stopped."""
    from dragon import runtime
    from dragon.journal import describe_journal

    settings = _settings(host=host, port=port, data_dir=data_dir, ray_address=ray_address)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    secret = runtime.ensure_dev_account(settings)
    runtime.start_ray(settings)
    runtime.start_actors(settings)
    runtime.deploy(settings)
    runtime.wait_until_ready(settings)
    if secret:
        click.echo(f"Created the development account '{runtime.DEV_ACCOUNT}'; its secret (shown only once): {secret}")
    click.echo(f"Ray cluster: {runtime.ray_address()}")
    click.echo(f"Journal: {describe_journal(settings)}")
    click.echo(f"Dragon is serving on http://{settings.host}:{settings.port} (data in {settings.data_dir.absolute()})")
    if ray_address:
        return
    stopping: list[int] = []  # set from a signal handler: no locks there
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, _: stopping.append(signum))
    while not stopping:
        time.sleep(0.2)
    click.echo("Stopping: tasks that have not ended will run again at the next start.")
    runtime.shutdown(settings)


@main.group()
def accounts() -> None:
    """Create, list and delete accounts (in the journal: $DRAGON_JOURNAL_DSN, else --data-dir's)."""


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
    from dragon.accounts import Account, digest, new_api_key, new_secret
    from dragon.journal import open_journal
    from dragon.status import now_iso

    from dragon.storage.paths import ACCOUNT_NAME

    if not ACCOUNT_NAME.match(name):
        raise click.BadParameter("letters, digits, '_', '.' and '-' only, at most 64", param_hint="NAME")
    settings = _settings(data_dir=data_dir)
    secret = secret or new_secret()
    api_key = api_key or new_api_key()
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
            )
        )
    click.echo(json.dumps({"name": name, "secret": secret, "api_key": api_key, "referrers": list(referrer)}))


@accounts.command("list")
@click.option("--data-dir", type=click.Path(path_type=Path))
def accounts_list(data_dir: Path | None) -> None:
    """Print every account (never its credentials) as JSON."""
    from dragon.journal import open_journal

    with closing(open_journal(_settings(data_dir=data_dir))) as journal:
        click.echo(json.dumps([a.public() for a in journal.accounts()], indent=2))


@accounts.command("delete")
@click.argument("name")
@click.option("--data-dir", type=click.Path(path_type=Path))
def accounts_delete(name: str, data_dir: Path | None) -> None:
    """Delete an account; its credentials stop working within seconds."""
    from dragon.journal import open_journal

    with closing(open_journal(_settings(data_dir=data_dir))) as journal:
        deleted = journal.delete_account(name)
    if not deleted:
        raise click.ClickException(f"no account named {name!r}")
    click.echo(json.dumps({"deleted": name}))


@main.command()
@click.argument("task_name")
@click.option("--input", "manifest", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Manifest: .parquet, .csv or .jsonl, one row per item (at least url).")
@click.option("--output", required=True, type=click.Path(path_type=Path), help="Results: a directory of Parquet parts.")
@click.option("--param", "params", multiple=True, metavar="K=V", help="A parameter for every row (V as JSON if it parses).")
@click.option("--account", default="dev", show_default=True, help="Account whose store receives the outputs.")
@click.option("--address", "ray_address", default="auto", show_default=True, help="The service's Ray cluster.")
@click.option("--concurrency", type=int, help="Most rows running at once (default: as the cluster's CPUs allow).")
@click.option("--part-rows", type=int, help="Rows per results part (default 1000); an interruption loses at most one part.")
@click.option("--json", "as_json", is_flag=True, help="Print the final counts as JSON, without a progress bar.")
def batch(task_name: str, manifest: Path, output: Path, params: tuple[str, ...], account: str, ray_address: str,
          concurrency: int | None, part_rows: int | None, as_json: bool) -> None:
    """Run TASK_NAME over every row of a manifest; re-running resumes."""
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
        result = handles.batch(task_name, manifest, output, fixed, account=account, address=ray_address,
                               on_progress=show, concurrency=concurrency, part_rows=part_rows)
    finally:
        if bar is not None:
            bar.__exit__(None, None, None)
    if as_json:
        click.echo(json.dumps(result.as_dict()))
    else:
        click.echo(f"{result.total} rows: {result.done - result.failed} succeeded, {result.failed} failed, "
                   f"{result.skipped} done before; results in {output}")


cli_client.register(main)
main.add_command(cli_sxml.sxml)


if __name__ == "__main__":
    main()
