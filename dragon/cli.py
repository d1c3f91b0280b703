"""The ``dragon`` command: run the service and manage accounts."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import click

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
    """Create, list and delete accounts (in the journal of --data-dir)."""


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
    journal = open_journal(settings)
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

    click.echo(json.dumps([a.public() for a in open_journal(_settings(data_dir=data_dir)).accounts()], indent=2))


@accounts.command("delete")
@click.argument("name")
@click.option("--data-dir", type=click.Path(path_type=Path))
def accounts_delete(name: str, data_dir: Path | None) -> None:
    """Delete an account; its credentials stop working within seconds."""
    from dragon.journal import open_journal

    if not open_journal(_settings(data_dir=data_dir)).delete_account(name):
        raise click.ClickException(f"no account named {name!r}")
    click.echo(json.dumps({"deleted": name}))


if __name__ == "__main__":
    main()
