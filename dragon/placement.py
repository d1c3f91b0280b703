"""Where the service's own actors run, and whether GPU-capable work asks for its GPU share.

Control actors (the task shards): with the SQLite journal, on the head node, whose disk
holds the journal; with PostgreSQL, spread over the nodes that offer the custom resource
``Settings.control_resource`` (stable nodes that autoscaling does not remove), or on the
head when none does. Storage actors run on every node that stores files (started there
on first use: dragon/actors/storage.py). Ordinary tasks are bound to nodes by their
shard (dragon/actors/dispatch.py).

GPUs: one rule for the shards (task types that declare a GPU share) and for task code
that starts Ray tasks of its own (the movie renderer's segments).
"""

from __future__ import annotations

import time
from typing import Any

import ray

from dragon.config import Settings

HEAD_NODE_RESOURCE = "node:__internal_head__"  # Ray's resource of the head node
SHARE = 0.001  # of a node resource: a placement constraint that uses up nothing


def head_node_id() -> str:
    [head] = [n["NodeID"] for n in ray.nodes() if n["Alive"] and HEAD_NODE_RESOURCE in n["Resources"]]
    return head


def control_options(settings: Settings) -> dict[str, Any]:
    """Ray options that place a control actor (see above)."""
    if settings.journal_dsn and ray.cluster_resources().get(settings.control_resource, 0) > 0:
        return {"resources": {settings.control_resource: SHARE}, "scheduling_strategy": "SPREAD"}
    return {"resources": {HEAD_NODE_RESOURCE: SHARE}}


def task_nodes() -> dict[str, float]:
    """The alive nodes ordinary tasks may be bound to (dragon/actors/dispatch.py): node id
    -> CPUs. Nodes with GPUs only while no other node has CPUs: as Ray's own scheduler
    does, CPU work stays off GPU nodes."""
    nodes = [n for n in ray.nodes() if n["Alive"] and n["Resources"].get("CPU", 0) > 0]
    plain = [n for n in nodes if not n["Resources"].get("GPU")]
    return {n["NodeID"]: float(n["Resources"]["CPU"]) for n in plain or nodes}


GPU_CHECK_INTERVAL = 5.0  # seconds between looks at the cluster's GPUs (use_gpus unset)


class GpuRule:
    """``use_gpus`` true: always ask, even while no node has a GPU, so that an autoscaler
    which can add GPU nodes sees the demand; false: never. Unset: ask while the cluster
    has GPUs, looking again every ``GPU_CHECK_INTERVAL`` seconds, so GPU nodes that join
    (or leave) later are seen; asking on a cluster that has none and cannot get one
    would queue the work forever.
    """

    def __init__(self, use_gpus: bool | None):
        self._fixed = use_gpus
        self._has_gpus = False
        self._checked = -GPU_CHECK_INTERVAL

    def ask(self) -> bool:
        if self._fixed is not None:
            return self._fixed
        now = time.monotonic()
        if now - self._checked >= GPU_CHECK_INTERVAL:
            self._checked = now
            self._has_gpus = ray.cluster_resources().get("GPU", 0) > 0
        return self._has_gpus
