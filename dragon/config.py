"""Service settings, read once from the environment (prefix ``DRAGON_``) and CLI flags.

The resolved :class:`Settings` object is passed explicitly to every actor, so a worker
on another node never depends on its own environment to agree with the head node.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def default_data_dir() -> Path:
    """The same place whatever the working directory, so every command finds the data of
    the service: $XDG_DATA_HOME/dragon, i.e. ~/.local/share/dragon by default."""
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "dragon"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DRAGON_", frozen=True)

    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Journal (SQLite), output files, scratch and the Ray address `dragon serve` records.",
    )
    journal_dsn: str | None = Field(
        default=None,
        repr=False,  # it usually holds a password: never in reprs, logs or statuses
        description="PostgreSQL journal, e.g. postgresql://user:password@host:5432/dragon; None = SQLite in data_dir.",
    )
    public_url: str | None = Field(
        default=None, description="Base URL clients use to reach the service (output file URLs)."
    )

    # Ray placement
    ray_address: str | None = Field(default=None, description="Existing cluster; None starts a local one.")
    ray_namespace: str = "dragon"
    metrics_export_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Port of the Prometheus "
        "endpoint of the local Ray cluster `dragon serve` starts (Ray's and "
        "Dragon's metrics); None lets Ray choose. Clusters: `ray start "
        "--metrics-export-port`.",
    )
    shards: int = Field(
        default=2,
        ge=1,
        le=256,
        description="Task shards: each owns the tasks of its keys' bucket "
        "(statuses, scheduling, callbacks); more spread the control plane (docs/deployment.md).",
    )
    control_resource: str = Field(
        default="dragon_control",
        description="With a PostgreSQL journal, shards spread "
        "over the nodes offering this custom resource (else they run on the head).",
    )
    lease_seconds: float = Field(
        default=60.0,
        gt=0,
        description="The journal's lease: one head owns the queue; it "
        "renews it every quarter of this, and stops if it could not for three quarters.",
    )
    lease_wait_seconds: float = Field(
        default=150.0,
        ge=0,
        description="How long a starting head waits for another "
        "head's lease to lapse before it refuses to start (docs/deployment.md).",
    )
    api_replicas: int = Field(default=1, ge=1)
    api_replica_cpus: float = 0.25

    # Waiting and streaming
    block_timeout: float = Field(default=600.0, gt=0, description="Server-side cap of block=true, seconds.")
    stream_poll_timeout: float = Field(default=15.0, gt=0)
    max_request_bytes: int = 8 * 1024 * 1024
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Origins whose pages may read every answer, besides those the accounts' "
        "referrer whitelists allow (comma-separated; * for any). docs/api.md, Browsers.",
    )
    max_tasks_per_request: int = 10_000

    # Execution
    task_max_attempts: int = Field(default=3, ge=1, description="Tries per task when its worker dies.")
    task_modules: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Extra modules that register task types (comma-separated)."
    )
    allow_private_urls: bool = False
    render_segment_seconds: float = Field(
        default=5.0, gt=0, description="video.create: movie seconds per parallel segment."
    )
    render_parallel: int = Field(
        default=0, ge=0, description="video.create: segments rendered at once per movie (0: as Ray allows)."
    )
    use_gpus: bool | None = Field(
        default=None,
        description="GPU-capable tasks ask for their GPU share: unset = while the cluster has GPUs (checked "
        "again every few seconds, so GPU nodes that join are used); true = even while it has none, where GPU "
        "nodes are started on demand by the autoscaler; false = never (dragon/placement.py).",
    )
    bind_tasks_to_nodes: bool = Field(
        default=True,
        description="Shards bind each task to a node with room (soft node affinity), keep the rest queued "
        "until room comes and ask Ray's autoscaler for all of it; false = every task to Ray as it starts "
        "(dragon/actors/dispatch.py).",
    )
    worker_pools: Literal["gpu", "all", "off"] = Field(
        default="gpu",
        description="Long-lived task actors for pooled task types (beat tracking; dragon/actors/pool.py): on "
        "GPU nodes only (gpu), on every node, running on CPU where there is no GPU (all), or none (off).",
    )
    pool_slots: int = Field(
        default=2, ge=1, description="Tasks or movie segments one pool member runs at once (CPUs it holds)."
    )
    pool_gpu_share: float = Field(
        default=0.5, gt=0, le=1, description="Share of its GPU a pool member holds; the rest stays for stateless tasks."
    )
    pool_idle_seconds: float = Field(
        default=60.0, gt=0, description="A pool member without a task for this long is stopped."
    )

    # Publishing platforms (dragon/platforms/): base URLs, so tests and proxies can move them
    youtube_api_url: str = "https://www.googleapis.com"
    youtube_watch_url: str = "https://www.youtube.com/watch?v="
    facebook_graph_url: str = "https://graph-video.facebook.com/v19.0"
    facebook_video_url: str = "https://www.facebook.com/watch/?v="
    vimeo_api_url: str = "https://api.vimeo.com"
    vimeo_v2_url: str = "https://vimeo.com/api/rest/v2"
    vimeo_video_url: str = "https://vimeo.com/"
    upload_chunk_bytes: int = Field(
        default=8 * 1024**2, description="Bytes per upload request; YouTube needs multiples of 256 KiB."
    )
    max_upload_bytes: int = Field(default=2 * 1024**3, description="Largest file a client may upload (in parts).")
    max_upload_request_bytes: int = Field(
        default=64 * 1024**2,
        description="Largest file POST /v2/storage/upload "
        "takes in one request; larger ones go in parts (POST /v2/storage/uploads).",
    )
    upload_part_bytes: int = Field(
        default=8 * 1024**2,
        ge=5 * 1024**2,
        description="Bytes per part of an upload "
        "in parts (S3 wants 5 MiB at least); a replica holds one part at a time.",
    )
    upload_resumes: int = Field(default=5, description="Interrupted chunks resumed per upload before giving up.")

    # Input fetching (dragon/storage/fetch.py)
    fetch_max_bytes: int = 2 * 1024**3
    fetch_connect_timeout: float = 10.0
    fetch_read_timeout: float = 30.0
    fetch_total_timeout: float = 600.0
    fetch_max_redirects: int = 5

    # Output storage (dragon/storage/)
    storage_backend: str = Field(default="local", pattern="^(local|s3)$")
    volatile_days: float = Field(default=7.0, gt=0)
    sweep_interval: float = Field(default=3600.0, gt=0, description="Seconds between expiry sweeps.")
    s3_bucket: str = "dragon"
    s3_prefix: str = ""
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: str | None = Field(default=None, repr=False)
    s3_public_url: str | None = Field(default=None, description="Base URL of public objects; else presigned GETs.")
    s3_url_expiry: int = Field(default=7 * 24 * 3600, description="Lifetime of presigned output URLs, seconds.")
    node_cache_bytes: int = Field(
        default=4 << 30,
        ge=0,
        description=(
            "Bytes of its S3 outputs a node keeps on disk for the pipeline steps that use them there; 0: none."
        ),
    )
    node_cache_seconds: float = Field(default=3600.0, gt=0, description="How long a node keeps such a copy.")

    # Callbacks (dragon/actors/callbacks.py)
    callback_timeout: float = 10.0
    callback_retry_period: float = Field(default=86400.0, description="Seconds a delivery is retried for.")
    callback_backoff: float = 1.0
    callback_backoff_max: float = 600.0
    idempotency_window: float = 86400.0

    # Default limits of new accounts
    default_max_concurrent_tasks: int = 256
    default_max_queued_tasks: int = 100_000

    @field_validator("task_modules", "cors_origins", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [m.strip() for m in value.split(",") if m.strip()]
        return value

    @property
    def journal_path(self) -> Path:
        return self.data_dir.absolute() / "journal.sqlite3"

    @property
    def files_dir(self) -> Path:
        return self.data_dir.absolute() / "files"

    @property
    def scratch_dir(self) -> Path:
        return self.data_dir.absolute() / "scratch"

    @property
    def node_cache_dir(self) -> Path:
        """Beside scratch (one file system: outputs are hard-linked, not copied)."""
        return self.data_dir.absolute() / "cache"

    @property
    def ray_address_file(self) -> Path:
        return self.data_dir.absolute() / "ray-address"

    def recorded_ray_address(self) -> str | None:
        """The Ray cluster that `dragon serve` last ran on with this data dir: what
        ``dragon batch`` and ``dragon.connect()`` join when not told, instead of Ray's
        ``auto``, which is ambiguous with two clusters on a machine."""
        try:
            return self.ray_address_file.read_text().strip() or None
        except FileNotFoundError:
            return None

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")


# Ray settings Dragon runs with, set in the environment before Ray starts (any can be
# overridden there). Read by every Ray process when it starts, so a cluster's nodes set
# them too (deploy/dragon.env.example, which cluster.yaml's nodes source, and
# deploy/kuberay-rayservice.yaml). Figures: docs/benchmarks.md, dev machine.
RAY_ENVIRONMENT = {
    # Serve's request path without its extra thread hops, and from proxy to replica over
    # gRPC instead of Ray actor calls (part of Serve's documented throughput mode, without
    # its direct ingress: requests still enter through Serve's proxy): a blocking
    # create's p50 from 21.7 to 14-18 ms, API thumbnails about 10% more per second.
    "RAY_SERVE_RUN_USER_CODE_IN_SEPARATE_THREAD": "0",
    "RAY_SERVE_RUN_ROUTER_IN_SEPARATE_LOOP": "0",
    "RAY_SERVE_USE_GRPC_BY_DEFAULT": "1",
    "RAY_SERVE_REQUEST_PATH_LOG_BUFFER_SIZE": "1000",
    # Most task types ask for a fraction of a CPU, so a busy node runs more worker
    # processes than it has CPUs; Ray kills those beyond one per CPU after one idle
    # second, and starts them again (about a second of CPU each) a moment later. Kept
    # 30 s instead: 25 clients of blocking creates went from 31-67 to 72-89 tasks/s,
    # p99 from 0.9-6.1 s to 0.45-0.65 s, with half the worker processes started.
    "RAY_idle_worker_killing_time_threshold_ms": "30000",
}


def prepare_ray_environment() -> None:
    """Pin Ray's token auth off and the settings of RAY_ENVIRONMENT, unless the operator
    chose otherwise.

    A token left in ~/.ray by another tool would otherwise make start-up fail here.
    Must run before ``import ray``.
    """
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    for name, value in RAY_ENVIRONMENT.items():
        os.environ.setdefault(name, value)
