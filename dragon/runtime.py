"""Bringing the service up on Ray: the cluster, the detached actors, the Serve app.

Used by ``dragon serve`` and by :func:`dragon.connect`; nothing here handles requests.
"""

from __future__ import annotations

import logging
import socket
import time
import uuid
from typing import Any, cast

from dragon.config import Settings, prepare_ray_environment

prepare_ray_environment()

import ray  # noqa: E402
from ray import serve  # noqa: E402
from ray.exceptions import RayTaskError  # noqa: E402

from dragon import webhooks  # noqa: E402
from dragon.accounts import Account, digest, new_secret  # noqa: E402
from dragon.actors import control, storage  # noqa: E402
from dragon.journal import open_journal  # noqa: E402
from dragon.placement import HEAD_NODE_RESOURCE, SHARE, head_node_id  # noqa: E402
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
        _metrics_export_port=None if settings.ray_address else settings.metrics_export_port,
        log_to_driver=True,
    )


def ray_address() -> str:
    """The address other drivers pass to ray.init (or dragon.connect) to join."""
    return ray.get_runtime_context().gcs_address


def ensure_dev_account(settings: Settings) -> tuple[str, str] | None:
    """On the very first start, create the development account; returns its secret and
    its webhook signing secret, once."""
    journal = open_journal(settings)
    try:
        if journal.accounts():
            return None
        secret, webhook_secret = new_secret(), webhooks.new_secret()
        journal.put_account(
            Account(
                name=DEV_ACCOUNT,
                secret_hash=digest(secret),
                max_concurrent_tasks=settings.default_max_concurrent_tasks,
                max_queued_tasks=settings.default_max_queued_tasks,
                created_at=now_iso(),
                webhook_secret=webhook_secret,
            )
        )
        return secret, webhook_secret
    finally:
        journal.close()


def start_actors(settings: Settings) -> None:
    """Create (or find) the control actor, which takes the journal's lease and starts the
    task shards, and the head's storage actor (which runs the expiry sweeper); returns
    once every shard has queued again its unfinished tasks. Raises LeaseHeldError (and
    leaves no control actor behind) if another head kept the lease.

    Where shards run is dragon/placement.py's rule. The namespace is explicit because
    Serve's application builder runs outside the deploying driver's namespace.
    """
    head = {"resources": {HEAD_NODE_RESOURCE: SHARE}}
    holder = f"{socket.gethostname()}/{uuid.uuid4().hex[:8]}"  # this head, in the journal's lease
    control_actor = control.Control.options(  # type: ignore[attr-defined]  # added by @ray.remote
        name=control.ACTOR_NAME, namespace=settings.ray_namespace, lifetime="detached", get_if_exists=True, **head
    ).remote(settings, holder)
    storage.storage_on(head_node_id(), settings, sweeper=True)
    try:
        ray.get(control_actor.ready.remote())
    except RayTaskError as exc:
        if isinstance(exc.cause, control.LeaseHeldError):
            ray.kill(control_actor, no_restart=True)
            raise exc.cause from None
        raise


def lease_lost(settings: Settings) -> str | None:
    """Why this head stopped running tasks (another head took the journal's lease), or
    None while it runs them (or cannot tell now)."""
    try:
        actor = ray.get_actor(control.ACTOR_NAME, namespace=settings.ray_namespace)
        return cast("str | None", ray.get(actor.lost.remote(), timeout=10))
    except Exception:  # restarting, or Ray busy: ask again later
        return None


def app_builder(args: dict[str, Any]) -> serve.Application:
    """The application of a Serve config file (deploy/serve.yaml, KubeRay's serveConfigV2).

    ``args`` are :class:`Settings` fields; the others come from the ``DRAGON_*``
    variables of the process that builds the app, as with ``dragon serve``. Replicas,
    CPUs and autoscaling are the config file's. The actors are created first when the
    cluster has none, so the config alone brings the whole service up.
    """
    from dragon.serve.app import Api

    settings = Settings(**args)
    start_actors(settings)
    return Api.bind(settings)  # type: ignore[attr-defined]  # added by @serve.deployment


def deploy(settings: Settings) -> None:
    from dragon.serve.app import build

    serve.start(http_options={"host": settings.host, "port": settings.port}, detached=True)
    serve.run(build(settings), name=APP_NAME, route_prefix="/", blocking=False)


def shutdown(settings: Settings) -> None:
    """Stop the Serve app and the actors, then Ray itself. Tasks that have not ended
    stay in the journal and run again at the next start."""
    serve.shutdown()
    try:
        ray.get(ray.get_actor(control.ACTOR_NAME, namespace=settings.ray_namespace).release.remote(), timeout=10)
    except Exception:  # not running, or the journal down: the lease lapses by itself
        pass
    names = [control.ACTOR_NAME]  # its shards go with it
    names += [
        a["name"]
        for a in ray.util.list_named_actors(all_namespaces=True)
        if a["namespace"] == settings.ray_namespace and a["name"].startswith(storage.ACTOR_PREFIX)
    ]
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
