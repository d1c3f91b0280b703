"""Whether this worker may use a GPU: Ray assigns one by setting CUDA_VISIBLE_DEVICES."""

from __future__ import annotations

import os


def gpu_assigned() -> bool:
    """Whether Ray gave this worker a GPU (it sets CUDA_VISIBLE_DEVICES for GPU tasks)."""
    return os.environ.get("CUDA_VISIBLE_DEVICES", "").strip() not in ("", "-1")
