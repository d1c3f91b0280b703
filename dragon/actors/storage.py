"""Storage actors: the only writers of output files, and the Storage API's back end.

Workers hand them finished files (as Ray objects, so any node can write to any
backend); they place them in the account's persistent or volatile area, or PUT them
to a client's pre-signed S3 URL. Actor 0 also runs the expiry sweeper.
"""

from __future__ import annotations

import dataclasses
import logging
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import ray

from dragon.config import Settings
from dragon.errors import RequestError, TaskError
from dragon.journal import open_journal
from dragon.storage import Entry, open_backend
from dragon.storage.fetch import UnsafeURLError, pinned_request, tls_context
from dragon.storage.paths import PERSISTENT, VOLATILE, account_root, output_name

log = logging.getLogger(__name__)


def actor_name(i: int) -> str:
    return f"dragon-storage-{i}"


class StorageError(TaskError):
    """An output file could not be placed where the task's store says."""


@ray.remote(num_cpus=0, max_restarts=-1, max_task_retries=-1, max_concurrency=16)
class StorageActor:
    def __init__(self, settings: Settings, index: int):
        self.settings = settings
        self.backend = open_backend(settings)
        self.journal = open_journal(settings)
        if index == 0:  # one sweeper per deployment, started again with its actor
            threading.Thread(target=self._sweep_forever, name="sweeper", daemon=True).start()

    # writing outputs

    def store(
        self, account: str, key: str, task_name: str, task_store: dict[str, Any], source: str | bytes,
        extension: str, content_type: str, main: bool,
    ) -> str | None:
        """Place one output file; returns the URL that goes into the task's result.

        ``source`` is a path on the caller's node, or the file's bytes. A path from
        another node cannot be read here: the answer is then None, and the caller sends
        the bytes instead. On one machine that saves copying files through Ray.
        """
        if isinstance(source, str):
            path = Path(source)
            if not path.is_file():
                return None
            return self._place(account, key, task_name, task_store, path, extension, content_type, main)
        with tempfile.NamedTemporaryFile(prefix="dragon-out-") as tmp:
            tmp.write(source)
            tmp.flush()
            return self._place(account, key, task_name, task_store, Path(tmp.name), extension, content_type, main)

    def _place(
        self, account: str, key: str, task_name: str, task_store: dict[str, Any], path: Path,
        extension: str, content_type: str, main: bool,
    ) -> str:
        kind = task_store.get("type", "persistent")
        if kind == "s3_signed" and main:
            return self._put_signed(task_store["url"], path, content_type)
        area = PERSISTENT if kind == "persistent" else VOLATILE  # youtube and s3_signed side files: volatile
        name = output_name(area, account, key, task_name, extension)
        self.backend.put(name, path, content_type)
        return self.backend.url(name)

    def _put_signed(self, url: str, path: Path, content_type: str) -> str:
        # A URL signed without a Content-Type accepts none on some servers; one signed
        # with it needs it: try without, then with.
        with httpx.Client(timeout=self.settings.fetch_read_timeout, verify=tls_context()) as client:
            for headers in ({}, {"Content-Type": content_type}):
                try:
                    request = pinned_request(client, "PUT", url, self.settings.allow_private_urls, headers, path.read_bytes())
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

    def discard(self, account: str, key: str) -> int:
        """Removes what earlier attempts of a task stored (a worker that died after storing
        an output would leave it orphaned); returns how many files went."""
        names = [e.name for area in (PERSISTENT, VOLATILE) for e in self.backend.list(f"{area}/{account}/{key}/")]
        if names:
            self.backend.delete(names)
        return len(names)

    # the Storage API

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

    def delete(
        self, account: str, path: str, urls: list[str] | None, dry_run: bool,
        start: datetime | None, end: datetime | None, max_age: float | None,
    ) -> dict[str, Any]:
        root = account_root(account)
        if urls is not None:  # the spec: urls, when given, is the whole selection, even when empty
            names = {self.backend.name_of(u) for u in urls}
            mine = [n for n in names if n and (n.startswith(root) or n.startswith(account_root(account, VOLATILE)))]
            entries = [e for e in self.backend.list(root) + self.backend.list(account_root(account, VOLATILE)) if e.name in mine]
        else:
            entries, _ = self._select(root, path)
            now = datetime.now(timezone.utc)
            entries = [
                e for e in entries
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

    def expiration(self, account: str, days: int | None = None) -> int:
        found = self.journal.account(account)
        if found is None:
            raise RequestError("secret", "invalid credentials", "body", 401)
        if days is not None:
            found = dataclasses.replace(found, storage_expiration_days=days)
            self.journal.put_account(found)
        return found.storage_expiration_days

    # expiry

    def sweep(self) -> list[str]:
        """Delete volatile files past ``volatile_days`` and persistent ones past their
        account's expiration; returns the deleted object names."""
        now = datetime.now(timezone.utc)
        doomed = [e.name for e in self.backend.list(VOLATILE + "/") if e.last_modified < now - timedelta(days=self.settings.volatile_days)]
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


def _stamp(moment: datetime) -> str:
    """The listing's date format: ``2013-10-28T20:22:21.000Z``."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
