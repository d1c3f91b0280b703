"""Storage actors: the only writers of output files, and the Storage API's back end.

One runs on every node that needs one (started there on first use, pinned to it), so a
worker hands over the *path* of a finished file and its bytes go from that node's disk
straight to the backend: streamed to S3 (multipart), hard-linked on local disk, or PUT
to a client's pre-signed URL. No file data crosses the cluster or Ray's object store.
What must stay in one place is metadata only: listings, deletions and expirations read
and write the backend's names and the journal; the head's actor also runs the expiry
sweeper.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from dragon import metrics
from dragon.config import Settings
from dragon.errors import CredentialsError, InvalidRequestError, RefusedError, TaskError, UnavailableError
from dragon.journal import open_journal
from dragon.status import new_key
from dragon.storage import Entry, open_backend
from dragon.storage.fetch import UnsafeURLError, pinned_request, tls_context
from dragon.storage.paths import (
    PERSISTENT,
    VOLATILE,
    UnknownUploadError,
    account_root,
    output_name,
    read_upload_id,
    upload_id,
)

log = logging.getLogger(__name__)


ACTOR_PREFIX = "dragon-storage-"
_local: dict[tuple[str, str], ray.actor.ActorHandle] = {}


T = TypeVar("T")


def actor_name(node_id: str) -> str:
    return ACTOR_PREFIX + node_id[:16]


def storage_on(node_id: str, settings: Settings, *, sweeper: bool = False) -> ray.actor.ActorHandle:
    """The storage actor of a node, started there if it has none yet (detached, pinned
    to the node: it dies with it and is not moved)."""
    return StorageActor.options(  # type: ignore[attr-defined]  # added by @ray.remote
        name=actor_name(node_id),
        namespace=settings.ray_namespace,
        lifetime="detached",
        get_if_exists=True,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False),
    ).remote(settings, sweeper)


def local_storage(settings: Settings) -> ray.actor.ActorHandle:
    """The storage actor of the calling process's node (one lookup per process)."""
    node = ray.get_runtime_context().get_node_id()
    found = _local.get((settings.ray_namespace, node))
    if found is None:
        found = _local[(settings.ray_namespace, node)] = storage_on(node, settings)
    return found


class StorageError(TaskError):
    """An output file could not be placed where the task's store says."""


def _available(method: Callable[..., T]) -> Callable[..., T]:
    """A Storage API call whose backend or journal is down is refused with 503 (retry
    later), never a 500; the API's own refusals pass as they are."""

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> T:
        try:
            return method(*args, **kwargs)
        except RefusedError:
            raise
        except Exception as exc:
            log.warning("storage call %s failed: %s", method.__name__, type(exc).__name__)
            raise UnavailableError("service", "the storage is unavailable, retry later") from None

    return call


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1, max_concurrency=16)  # type: ignore[call-overload]  # Ray's stubs lack actor options
class StorageActor:
    def __init__(self, settings: Settings, sweeper: bool = False):
        self.settings = settings
        self.backend = open_backend(settings)
        self.journal = open_journal(settings)
        if sweeper:  # one sweeper per deployment, started again with its actor
            threading.Thread(target=self._sweep_forever, name="sweeper", daemon=True).start()

    # writing outputs

    def store(
        self,
        account: str,
        key: str,
        task_name: str,
        task_store: dict[str, Any],
        path: str,
        extension: str,
        content_type: str,
        main: bool,
    ) -> str:
        """Place one output file, a path on this node; returns the URL that goes into the
        task's result. The file is handed over: it may be hard-linked into storage."""
        source = Path(path)
        if not source.is_file():
            raise StorageError(f"the output file is not on this node: {source.name}")
        kind = task_store.get("type", "persistent")
        size = source.stat().st_size
        if kind == "s3_signed" and main:
            url = self._put_signed(task_store["url"], source, content_type)
            metrics.stored(size, kind)
            return url
        area = PERSISTENT if kind == "persistent" else VOLATILE  # youtube and s3_signed side files: volatile
        name = output_name(area, account, key, task_name, extension)
        try:
            self.backend.put(name, source, content_type)
            metrics.stored(size, "upload" if task_name == "upload" else area)
            return self.backend.url(name)
        except Exception as exc:  # the store is down or refuses: the task ends saying so
            log.warning("storing %s failed: %s", name, type(exc).__name__)
            raise StorageError(f"the output could not be stored ({type(exc).__name__})") from None

    def _put_signed(self, url: str, path: Path, content_type: str) -> str:
        # A URL signed without a Content-Type accepts none on some servers; one signed
        # with it needs it: try without, then with. The body streams from disk.
        with httpx.Client(timeout=self.settings.fetch_read_timeout, verify=tls_context()) as client:
            for headers in ({}, {"Content-Type": content_type}):
                headers = {**headers, "Content-Length": str(path.stat().st_size)}
                try:
                    request = pinned_request(
                        client, "PUT", url, self.settings.allow_private_urls, headers, _chunks(path)
                    )
                    r = client.send(request)
                except UnsafeURLError as exc:
                    raise StorageError(f"the signed URL is not allowed: {exc}") from None
                except httpx.HTTPError as exc:
                    raise StorageError(f"could not upload to the signed URL: {type(exc).__name__}") from None
                if r.status_code != 403:
                    break
        if r.status_code >= 300:
            raise StorageError(f"the signed URL refused the upload: HTTP {r.status_code}")
        return url.split("?", 1)[0]

    # a client's file in parts (POST /v2/storage/uploads): each part is a file on this node

    @_available
    def begin_upload(self, account: str, extension: str, content_type: str) -> str:
        name = output_name(PERSISTENT, account, new_key(), "upload", extension)
        return upload_id(account, name, self.backend.start_upload(name, content_type))

    @_available
    def upload_part(self, account: str, upload: str, number: int, path: str) -> None:
        name, backend_upload = read_upload_id(upload, account)
        try:
            self.backend.put_part(name, backend_upload, number, Path(path))
        except FileNotFoundError:
            raise UnknownUploadError(upload) from None

    @_available
    def finish_upload(self, account: str, upload: str) -> tuple[str, int]:
        """The URL and size of the joined file."""
        name, backend_upload = read_upload_id(upload, account)
        try:
            size = self.backend.finish_upload(name, backend_upload, self.settings.upload_part_bytes)
        except FileNotFoundError:
            raise UnknownUploadError(upload) from None
        except ValueError as exc:
            raise InvalidRequestError("upload", str(exc)) from None
        metrics.stored(size, "upload")
        return self.backend.url(name), size

    @_available
    def abort_upload(self, account: str, upload: str) -> None:
        name, backend_upload = read_upload_id(upload, account)
        try:
            self.backend.abort_upload(name, backend_upload)
        except FileNotFoundError:
            raise UnknownUploadError(upload) from None

    def discard(self, account: str, key: str) -> int:
        """Removes what earlier attempts of a task stored (a worker that died after storing
        an output would leave it orphaned); returns how many files went."""
        names = [e.name for area in (PERSISTENT, VOLATILE) for e in self.backend.list(f"{area}/{account}/{key}/")]
        if names:
            self.backend.delete(names)
        return len(names)

    # the Storage API

    @_available
    def listing(self, account: str, path: str, recursive: bool) -> dict[str, Any]:
        entries, base = self._select(account_root(account), path)
        files, directories = [], set()
        for e in entries:
            rel = e.name[len(base) :]
            parents = rel.split("/")[:-1]
            if parents and not recursive:
                directories.add(parents[0] + "/")
                continue
            directories.update("/".join(parents[: i + 1]) + "/" for i in range(len(parents)))
            files.append({"name": rel, "size": e.size, "last_modified": _stamp(e.last_modified)})
        return {"files": files, "directories": sorted(directories), "usage": sum(e.size for e in entries)}

    @_available
    def delete(
        self,
        account: str,
        path: str,
        urls: list[str] | None,
        dry_run: bool,
        start: datetime | None,
        end: datetime | None,
        max_age: float | None,
    ) -> dict[str, Any]:
        root = account_root(account)
        if urls is not None:  # the spec: urls, when given, is the whole selection, even when empty
            names = {self.backend.name_of(u) for u in urls}
            mine = [n for n in names if n and (n.startswith(root) or n.startswith(account_root(account, VOLATILE)))]
            entries = [
                e
                for e in self.backend.list(root) + self.backend.list(account_root(account, VOLATILE))
                if e.name in mine
            ]
        else:
            entries, _ = self._select(root, path)
            now = datetime.now(UTC)
            entries = [
                e
                for e in entries
                if (start is None or e.last_modified >= start)
                and (end is None or e.last_modified <= end)
                and (max_age is None or e.last_modified <= now - timedelta(days=max_age))
            ]
        if not dry_run:
            self.backend.delete([e.name for e in entries])
        usage = sum(e.size for e in self.backend.list(root))
        return {
            "deleted": [e.name.split("/", 2)[2] for e in entries],
            "freed": sum(e.size for e in entries),
            "usage": usage,
        }

    @_available
    def expiration(self, account: str, days: int | None = None) -> int:
        found = self.journal.account(account)
        if found is None:
            raise CredentialsError("secret", "invalid credentials")
        if days is not None:
            found = dataclasses.replace(found, storage_expiration_days=days)
            self.journal.put_account(found)
        return found.storage_expiration_days

    # expiry

    def sweep(self) -> list[str]:
        """Delete volatile files past ``volatile_days`` and persistent ones past their
        account's expiration; returns the deleted object names."""
        now = datetime.now(UTC)
        doomed = [
            e.name
            for e in self.backend.list(VOLATILE + "/")
            if e.last_modified < now - timedelta(days=self.settings.volatile_days)
        ]
        for account in self.journal.accounts():
            if account.storage_expiration_days > 0:
                try:  # one account's odd setting must not stop the sweep of the others
                    cutoff = now - timedelta(days=account.storage_expiration_days)
                except OverflowError:
                    continue
                doomed += [e.name for e in self.backend.list(account_root(account.name)) if e.last_modified < cutoff]
        if doomed:
            self.backend.delete(doomed)
            log.info("sweeper deleted %d expired files", len(doomed))
        return doomed

    def _sweep_forever(self) -> None:
        while True:
            try:
                self.sweep()
            except Exception:
                log.exception("sweep failed")
            time.sleep(self.settings.sweep_interval)

    # internals

    def _select(self, root: str, path: str) -> tuple[list[Entry], str]:
        """Objects a client path designates (a directory's, or one file) and the prefix
        their listed names are relative to."""
        if not path:
            return self.backend.list(root), root
        directory = root + path + "/"
        inside = self.backend.list(directory)
        if inside:
            return inside, directory
        parent = root + path.rsplit("/", 1)[0] + "/" if "/" in path else root
        return [e for e in self.backend.list(parent) if e.name == root + path], parent


def _chunks(path: Path, size: int = 1024 * 1024) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while chunk := f.read(size):
            yield chunk


def _stamp(moment: datetime) -> str:
    """The listing's date format: ``2013-10-28T20:22:21.000Z``."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
