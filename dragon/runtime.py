"""Bringing the service up on Ray: the cluster, the detached actors, the Serve app.

Used by ``dragon serve`` and by :func:`dragon.connect`; nothing here handles requests.
"""

from __future__ import annotations

import logging
import time

from dragon.config import Settings, prepare_ray_environment

prepare_ray_environment()

import ray  # noqa: E402
from ray import serve  # noqa: E402
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy  # noqa: E402

from dragon.accounts import Account, digest, new_secret  # noqa: E402
from dragon.actors import callbacks, jobs, status, storage  # noqa: E402
from dragon.journal import open_journal  # noqa: E402
from dragon.status import now_iso  # noqa: E402

log = logging.getLogger(__name__)

APP_NAME = "dragon"
DEV_ACCOUNT = "dev"


def start_ray(settings: Settings) -> None:
    if ray.is_initialized():
        return
    ray.init(
        address=settings.ray_address,
        namespace=settings.ray_namespace,
        include_dashboard=False,
        logging_level=logging.WARNING,
        log_to_driver=True,
    )


def ray_address() -> str:
    """The address other drivers pass to ray.init (or dragon.connect) to join."""
    return ray.get_runtime_context().gcs_address


def ensure_dev_account(settings: Settings) -> str | None:
    """On the very first start, create the development account; returns its secret once."""
    journal = open_journal(settings)
    try:
        if journal.accounts():
            return None
        secret = new_secret()
        journal.put_account(
            Account(
                name=DEV_ACCOUNT,
                secret_hash=digest(secret),
                max_concurrent_tasks=settings.default_max_concurrent_tasks,
                max_queued_tasks=settings.default_max_queued_tasks,
                created_at=now_iso(),
            )
        )
        return secret
    finally:
        journal.close()


def start_actors(settings: Settings) -> None:
    """Create (or find) the detached status shards, storage actors and the job manager.

    They keep their state in the data dir (the SQLite journal, local outputs), which is
    on the machine running `dragon serve`: they are pinned to its node, so on a
    multi-node cluster they never start, or restart, on a machine without that data.
    """
    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    options = {"lifetime": "detached", "get_if_exists": True, "scheduling_strategy": here}
    callbacks.CallbackActor.options(name=callbacks.ACTOR_NAME, **options).remote(settings).start.remote()
    for i in range(settings.storage_actors):
        storage.StorageActor.options(name=storage.actor_name(i), **options).remote(settings, i)
    for shard in range(settings.status_shards):
        status.StatusShard.options(name=status.actor_name(shard), **options).remote(settings, shard)
    manager = jobs.JobManager.options(name=jobs.ACTOR_NAME, **options).remote(settings)
    ray.get(manager.ready.remote())


def deploy(settings: Settings) -> None:
    from dragon.serve.app import build

    serve.start(http_options={"host": settings.host, "port": settings.port}, detached=True)
    serve.run(build(settings), name=APP_NAME, route_prefix="/", blocking=False)


def shutdown(settings: Settings) -> None:
    """Stop the Serve app and the actors, then Ray itself. Tasks that have not ended
    stay in the journal and run again at the next start."""
    serve.shutdown()
    names = [jobs.ACTOR_NAME, callbacks.ACTOR_NAME]
    names += [status.actor_name(i) for i in range(settings.status_shards)]
    names += [storage.actor_name(i) for i in range(settings.storage_actors)]
    for name in names:
        try:
            ray.kill(ray.get_actor(name, namespace=settings.ray_namespace), no_restart=True)
        except ValueError:  # not running
            pass
    ray.shutdown()


def wait_until_ready(settings: Settings, timeout: float = 120.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://{settings.host}:{settings.port}/health", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError("the API did not become healthy in time")
