"""Whether GPU-capable work asks Ray for its GPU share (``Settings.use_gpus``).

One rule for the job manager (task types that declare a GPU share) and for task code
that starts Ray tasks of its own (the movie renderer's segments).
"""

from __future__ import annotations

import time

import ray

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
