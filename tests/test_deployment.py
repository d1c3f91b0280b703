"""The deployment files: cluster.yaml (Ray cluster launcher), deploy/serve.yaml (Serve
config), deploy/kuberay-rayservice.yaml (KubeRay) and deploy/Dockerfile, checked with
Ray's own validators and run where that is cheap: the Serve config is `serve run` on a
local Ray. Also what every deployment installs: the one list of Debian packages, the
lock (constraints.txt) and the package's own metadata. No cloud calls."""

from __future__ import annotations

import asyncio
import copy
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from packaging.requirements import Requirement
from packaging.version import Version
from ray._common.utils import import_attr
from ray.autoscaler._private.util import prepare_config, validate_config
from ray.serve.autoscaling_policy import replica_queue_length_autoscaling_policy
from ray.serve.config import AutoscalingConfig, AutoscalingContext
from ray.serve.schema import ServeDeploySchema

from dragon import runtime
from dragon.config import RAY_ENVIRONMENT, Settings
from dragon.media import speech, text
from dragon.serve.scaling import METRIC, LongPolls, scale_on_quick_requests
from tests.support.servers import free_port
from tests.support.service import ROOT

CLUSTER = ROOT / "cluster.yaml"
SERVE = ROOT / "deploy" / "serve.yaml"
KUBERAY = ROOT / "deploy" / "kuberay-rayservice.yaml"
ENV_EXAMPLE = ROOT / "deploy" / "dragon.env.example"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
SYSTEM_PACKAGES = ROOT / "deploy" / "system-packages.txt"
CONSTRAINTS = ROOT / "constraints.txt"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
SETTINGS = {f"DRAGON_{name.upper()}" for name in Settings.model_fields}
JOURNAL_DSN = "DRAGON_JOURNAL_DSN"  # the PostgreSQL journal's setting


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def requirements() -> list[Requirement]:
    """Everything pyproject.toml asks for: the base install and every extra."""
    project = PYPROJECT["project"]
    named = [*project["dependencies"], *(d for extra in project["optional-dependencies"].values() for d in extra)]
    return [r for r in map(Requirement, named) if r.name != project["name"]]


def pinned_ray() -> str:
    [ray] = [r for r in requirements() if r.name == "ray"]
    [spec] = ray.specifier
    assert spec.operator == "=="
    return spec.version


def locked() -> dict[str, str]:
    pins = [Requirement(line) for line in CONSTRAINTS.read_text().splitlines() if line and not line.startswith("#")]
    return {r.name.lower().replace("_", "-"): next(iter(r.specifier)).version for r in pins}


def system_packages() -> list[str]:
    return [
        line.split("#")[0].strip() for line in SYSTEM_PACKAGES.read_text().splitlines() if line.split("#")[0].strip()
    ]


def validated_cluster(config: dict[str, Any]) -> dict[str, Any]:
    """What `ray up` does before it touches AWS: fill in defaults, then validate."""
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


# cluster.yaml


def test_cluster_config_passes_rays_own_validator() -> None:
    prepared = validated_cluster(load(CLUSTER))
    assert prepared["provider"]["type"] == "aws"
    assert prepared["provider"]["region"] and prepared["provider"]["availability_zone"]


def test_cluster_validator_rejects_a_head_node_type_that_is_not_declared() -> None:
    broken = load(CLUSTER)
    broken["head_node_type"] = "no-such-type"
    with pytest.raises(ValueError, match="head_node_type"):
        validated_cluster(broken)


def test_gpu_worker_type_is_an_nvidia_instance_declaring_its_gpu_and_autoscaling_from_zero() -> None:
    gpu = load(CLUSTER)["available_node_types"]["gpu_worker"]
    assert gpu["resources"]["GPU"] >= 1
    assert re.match(r"(g4dn|g5|g6|g6e|p3|p4d|p5)\.", gpu["node_config"]["InstanceType"])
    assert "nvidia" in gpu["node_config"]["ImageId"]
    assert gpu["min_workers"] == 0 < gpu["max_workers"]


def test_worker_types_fit_within_max_workers() -> None:
    config = load(CLUSTER)
    workers = [t for name, t in config["available_node_types"].items() if name != config["head_node_type"]]
    assert sum(t["max_workers"] for t in workers) <= config["max_workers"]
    assert all(t["min_workers"] <= t["max_workers"] for t in workers)


def test_head_starts_ray_with_token_auth_then_deploys_dragon_on_it() -> None:
    commands = load(CLUSTER)["head_start_ray_commands"]
    ray_start = next(i for i, c in enumerate(commands) if "ray start --head" in c)
    deploy = next(i for i, c in enumerate(commands) if "dragon serve --address auto" in c)
    assert ray_start < deploy
    assert "RAY_AUTH_MODE=token" in commands[ray_start] and "RAY_AUTH_MODE=token" in commands[deploy]
    for setting in ("DRAGON_HOST=0.0.0.0", "DRAGON_STORAGE_BACKEND=s3", "DRAGON_USE_GPUS=true"):
        assert setting in commands[deploy]
    assert all("RAY_AUTH_MODE=token" in c for c in load(CLUSTER)["worker_start_ray_commands"] if "ray start" in c)


def test_setup_commands_install_the_wheel_with_the_lock_and_pinned_tools_only() -> None:
    config = load(CLUSTER)
    setup = " ".join(config["setup_commands"])
    mounted = {Path(source).resolve(): target for target, source in config["file_mounts"].items()}
    constraints = mounted[CONSTRAINTS]
    assert re.search(rf"uv pip install .*-c {re.escape(constraints)} .*dragon_tasks-\*\.whl\)\[server\]", setup)
    assert locked()["ray"] == pinned_ray()
    assert "| sh" not in setup and "|sh" not in setup and "curl" not in setup  # no installer piped to a shell
    assert re.search(r"pip install --quiet uv==\d+\.\d+\.\d+", setup)
    assert re.search(r"uv venv --python 3\.11\.\d+ ", setup)  # one CPython build, the project's minor version


def test_every_dragon_variable_the_deployment_files_set_is_a_setting() -> None:
    named = set()
    for path in (CLUSTER, ENV_EXAMPLE, KUBERAY):
        named |= set(re.findall(r"\bDRAGON_[A-Z0-9_]+", path.read_text()))
    assert {"DRAGON_HOST", "DRAGON_S3_BUCKET", JOURNAL_DSN} <= named
    assert named <= SETTINGS, named - SETTINGS


def test_every_node_of_both_clusters_runs_ray_with_the_settings_dragon_serve_sets() -> None:
    """Each Ray process reads these when it starts: a node without them would run the
    slower request path, or its proxy and replicas would speak different transports, or
    it would restart worker processes every second under load."""
    example = dict(
        line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines() if line and not line.startswith("#")
    )
    assert {k: example.get(k) for k in RAY_ENVIRONMENT} == RAY_ENVIRONMENT
    cluster = load(KUBERAY)["spec"]["rayClusterConfig"]
    pods = [cluster["headGroupSpec"], *cluster["workerGroupSpecs"]]
    for container in (c for pod in pods for c in pod["template"]["spec"]["containers"]):
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert {k: env.get(k) for k in RAY_ENVIRONMENT} == RAY_ENVIRONMENT


# deploy/serve.yaml


def test_serve_config_passes_serves_schema_with_no_key_serve_would_ignore() -> None:
    raw = load(SERVE)
    parsed = ServeDeploySchema.model_validate(raw)
    assert parsed.model_dump(mode="json", exclude_unset=True) == raw


def test_serve_config_names_the_app_builder_and_the_long_poll_aware_policy() -> None:
    [app] = load(SERVE)["applications"]
    builder = import_attr(app["import_path"])
    assert builder is runtime.app_builder
    [api] = app["deployments"]
    assert import_attr(api["autoscaling_config"]["policy"]["policy_function"]) is scale_on_quick_requests
    assert 0 < api["ray_actor_options"]["num_cpus"] < 1
    Settings(**app["args"])  # the builder's arguments are settings


def _context(ongoing: float, long_polls: list[float], replicas: int = 2) -> AutoscalingContext:
    return AutoscalingContext(
        deployment_id=None,  # type: ignore[arg-type]  # a Serve private DeploymentID: the policies never read it
        deployment_name="Api",
        app_name="dragon",
        current_num_replicas=replicas,
        target_num_replicas=replicas,
        running_replicas=[],
        total_num_requests=ongoing,
        total_queued_requests=0,
        aggregated_metrics={METRIC: {f"replica-{i}": n for i, n in enumerate(long_polls)}},  # type: ignore[misc]  # keyed by Serve's private ReplicaID: the policies read only the values
        raw_metrics={},
        capacity_adjusted_min_replicas=1,
        capacity_adjusted_max_replicas=16,
        policy_state={},
        last_scale_up_time=None,
        last_scale_down_time=None,
        current_time=None,
        config=AutoscalingConfig(min_replicas=1, max_replicas=16, target_ongoing_requests=4),
    )


def test_long_polls_do_not_add_replicas_where_serves_default_policy_would() -> None:
    ctx = _context(ongoing=1004, long_polls=[600, 400])  # 1000 waiting clients, 4 creates
    assert replica_queue_length_autoscaling_policy(ctx)[0] == 251
    assert scale_on_quick_requests(ctx)[0] == 1
    assert scale_on_quick_requests(_context(ongoing=40, long_polls=[0, 0]))[0] == 10  # quick requests still count


def test_a_stream_counts_as_a_long_poll_until_it_ends_or_its_client_leaves() -> None:
    async def scenario() -> list[int]:
        polls = LongPolls()
        seen = []

        async def lines():
            for line in ("a", "b", "c"):
                yield line

        finished = polls.stream(lines())
        async for _ in finished:
            seen.append(polls.open)
        seen.append(polls.open)
        left = polls.stream(lines())
        assert isinstance(left, AsyncGenerator)  # typed as an AsyncIterator, but closable
        await anext(left)
        seen.append(polls.open)
        await left.aclose()  # what Starlette does when the client disconnects
        seen.append(polls.open)
        with polls.held(False):  # a status poll without block
            seen.append(polls.open)
        return seen

    assert asyncio.run(scenario()) == [1, 1, 1, 0, 1, 0, 0]


def test_serve_run_of_the_config_brings_up_the_whole_service(tmp_path: Path) -> None:
    """`serve run deploy/serve.yaml` alone: the builder creates the actors, the API answers."""
    config = load(SERVE)
    port = free_port()
    config["http_options"]["port"] = port
    config["applications"][0]["deployments"][0]["autoscaling_config"]["min_replicas"] = 1  # 2 cores here
    (tmp_path / "serve.yaml").write_text(yaml.safe_dump(config))
    env = {
        **os.environ,
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        "PYTHONPATH": str(ROOT),
        "DRAGON_DATA_DIR": str(tmp_path / "data"),
    }
    account = subprocess.run(
        [sys.executable, "-m", "dragon", "accounts", "create", "ops", "--secret", "s3cret"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert account.returncode == 0, account.stderr
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "serve"), "run", str(tmp_path / "serve.yaml")],
        env=env,
        cwd=tmp_path,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        health = None
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                health = httpx.get(f"{url}/health", timeout=5)
                if health.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        assert health is not None and health.status_code == 200, (tmp_path / "serve.log").read_text()[-3000:]
        created = httpx.post(
            f"{url}/v2/create",
            timeout=60,
            json={"secret": "s3cret", "tasks": {"task_name": "hello", "name": "Serve"}, "block": True},
        )
        assert created.status_code == 200, created.text
        assert [(s["status"], s["result"]) for s in created.json()] == [("success", "Hello Serve")]
    finally:
        proc.send_signal(signal.SIGINT)  # serve run shuts down the local Ray it started
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


# deploy/kuberay-rayservice.yaml


def test_kuberay_serve_config_is_deploy_serve_yaml() -> None:
    spec = load(KUBERAY)["spec"]
    embedded = yaml.safe_load(spec["serveConfigV2"])
    ServeDeploySchema.model_validate(embedded)
    assert embedded["applications"] == load(SERVE)["applications"]


def test_kuberay_enables_gcs_fault_tolerance_with_the_redis_password_from_a_secret() -> None:
    ft = load(KUBERAY)["spec"]["rayClusterConfig"]["gcsFaultToleranceOptions"]
    assert re.fullmatch(r"[\w.-]+:\d+", ft["redisAddress"])
    assert set(ft["redisPassword"]["valueFrom"]["secretKeyRef"]) == {"name", "key"}


def test_kuberay_cluster_runs_the_pinned_ray_with_a_gpu_group_and_secrets_in_every_container() -> None:
    cluster = load(KUBERAY)["spec"]["rayClusterConfig"]
    assert cluster["rayVersion"] == pinned_ray()
    groups = {g["groupName"]: g for g in cluster["workerGroupSpecs"]}
    [gpu] = groups["gpu"]["template"]["spec"]["containers"]
    assert int(gpu["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    pods = [cluster["headGroupSpec"], *groups.values()]
    for container in (c for pod in pods for c in pod["template"]["spec"]["containers"]):
        env = {e["name"]: e for e in container["env"]}
        for secret in (JOURNAL_DSN, "DRAGON_S3_ACCESS_KEY_ID", "DRAGON_S3_SECRET_ACCESS_KEY"):
            assert "secretKeyRef" in env[secret]["valueFrom"]
        assert env["DRAGON_STORAGE_BACKEND"]["value"] == "s3"


def test_kuberay_gpu_pods_get_the_video_driver_capability_and_the_cpu_pods_no_cuda_image() -> None:
    cluster = load(KUBERAY)["spec"]["rayClusterConfig"]
    groups = {g["groupName"]: g for g in cluster["workerGroupSpecs"]}
    [gpu] = groups["gpu"]["template"]["spec"]["containers"]
    capabilities = {e["name"]: e.get("value") for e in gpu["env"]}["NVIDIA_DRIVER_CAPABILITIES"]
    assert {"video", "compute", "utility"} <= set(capabilities.split(","))  # NVENC/NVDEC, CUDA, nvidia-smi
    assert gpu["image"].endswith("-gpu")
    for pod in (cluster["headGroupSpec"], groups["cpu"]):
        assert all(c["image"].endswith("-cpu") for c in pod["template"]["spec"]["containers"])


def test_kuberay_workers_have_a_scratch_volume_for_the_largest_inputs_they_run_at_once() -> None:
    """Each attempt holds its input (at most fetch_max_bytes) and an output as large; a
    pod runs as many video or audio attempts (1 CPU each) as it has CPUs."""
    largest = Settings().fetch_max_bytes
    for group in load(KUBERAY)["spec"]["rayClusterConfig"]["workerGroupSpecs"]:
        pod = group["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        [container] = pod["containers"]
        data_dir = {e["name"]: e.get("value") for e in container["env"]}["DRAGON_DATA_DIR"]
        [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == data_dir]
        size = quantity(volumes[mount["name"]]["emptyDir"]["sizeLimit"])
        assert size >= int(container["resources"]["limits"]["cpu"]) * 2 * largest, group["groupName"]
        assert quantity(container["resources"]["requests"]["ephemeral-storage"]) >= size  # scheduled where it fits


def quantity(text: str) -> int:
    """A Kubernetes quantity in bytes (binary suffixes only: what the manifest uses)."""
    number, unit = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti)?", text).groups()  # type: ignore[union-attr]
    return int(number) * 1024 ** ("_KMGT".index(unit[0]) if unit else 0)


# deploy/Dockerfile


def test_one_dockerfile_builds_the_cpu_and_the_gpu_image_on_the_pinned_ray() -> None:
    dockerfile = DOCKERFILE.read_text()
    assert re.search(r"^ARG FLAVOR=gpu$", dockerfile, re.M)
    assert f"FROM rayproject/ray:{pinned_ray()}-py311-${{FLAVOR}}" in dockerfile
    assert re.search(r'if \[ "\$FLAVOR" = cpu \].*download\.pytorch\.org/whl/cpu', dockerfile)  # no CUDA torch
    assert re.search(r"^ENV NVIDIA_DRIVER_CAPABILITIES=.*\bvideo\b", dockerfile, re.M)


def test_the_image_installs_the_wheel_with_the_lock() -> None:
    dockerfile = DOCKERFILE.read_text()
    assert re.search(r"^COPY constraints\.txt dist/dragon_tasks-\*\.whl /tmp/dragon/$", dockerfile, re.M)
    assert re.search(
        r'pip install .*-c /tmp/dragon/constraints\.txt\s*\\\n\s*"\$\(ls /tmp/dragon/dragon_tasks-\*\.whl\)\[server\]"',
        dockerfile,
    )


# One list of the Debian packages the service needs


def test_make_the_image_and_the_cluster_install_the_one_list_of_system_packages() -> None:
    packages = system_packages()
    assert {"fonts-dejavu-core", "fonts-dejavu-extra", "espeak-ng"} <= set(packages)
    make = subprocess.run(["make", "-n", "runtime-deps"], cwd=ROOT, capture_output=True, text=True, check=True)
    assert re.search(rf"for p in {' '.join(packages)}; do dpkg-query", make.stdout)
    installs = {
        DOCKERFILE: (DOCKERFILE.read_text(), "/tmp/dragon/system-packages.txt"),
        CLUSTER: (
            " ".join(load(CLUSTER)["setup_commands"]),
            {Path(s).resolve(): t for t, s in load(CLUSTER)["file_mounts"].items()}[SYSTEM_PACKAGES],
        ),
    }
    assert "COPY deploy/system-packages.txt /tmp/dragon/" in DOCKERFILE.read_text()
    for path, (commands, listed) in installs.items():
        assert re.search(
            rf"sed 's/#\.\*//' {re.escape(listed)}\s*\|\s*xargs sudo DEBIAN_FRONTEND=noninteractive"
            r"[\s\\]+apt-get install",
            commands,
        ), path
    for path in (DOCKERFILE, CLUSTER, ROOT / "Makefile"):  # named in the list only, so they cannot drift apart
        assert not [p for p in packages if re.search(rf"(?<![\w-]){re.escape(p)}(?![\w-])", path.read_text())], path


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="needs a Debian system (make test installs the packages)")
def test_every_file_the_media_code_loads_comes_from_a_listed_package() -> None:
    fonts = [text.FONT_DIR / name for family in text.FAMILIES.values() for name in family]
    espeak = shutil.which(speech.ESPEAK)
    assert espeak, "make test installs deploy/system-packages.txt"
    libraries = subprocess.run(["/sbin/ldconfig", "-p"], capture_output=True, text=True).stdout
    fribidi = re.search(r"\s(/\S*libfribidi\.so\.0)\n", libraries)
    lame = re.search(r"\s(/\S*libmp3lame\.so\.0)\n", libraries)  # dragon/media/lame.py
    assert fribidi and lame
    files = [os.path.realpath(f) for f in (*fonts, espeak, fribidi.group(1), lame.group(1))]  # dpkg knows /usr/lib
    owners = subprocess.run(["dpkg", "-S", *files], capture_output=True, text=True)
    assert owners.returncode == 0, owners.stderr
    providing = {line.split(":")[0] for line in owners.stdout.splitlines()}
    assert providing <= set(system_packages()), providing - set(system_packages())


# Dependencies and metadata


def test_the_lock_pins_every_dependency_within_pyprojects_ranges() -> None:
    pins = locked()
    for requirement in requirements():
        name = requirement.name.lower().replace("_", "-")
        assert name in pins, f"{name} is not in constraints.txt: make lock"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            name,
            str(requirement.specifier),
            pins[name],
        )
    server = [Requirement(d) for d in PYPROJECT["project"]["optional-dependencies"]["server"]]
    [floor] = next(r for r in server if r.name == "starlette").specifier
    assert floor.operator == ">=" and Version(floor.version) >= Version("1.5.1")  # FileResponse's Range DoS and later


def test_the_package_declares_its_licence_and_its_types() -> None:
    project = PYPROJECT["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").read_text().split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert (ROOT / "dragon" / "py.typed").exists()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["dragon"]
    base = {Requirement(d).name for d in project["dependencies"]}
    assert base == {"httpx", "pydantic", "click", "rich"}  # the client installs light; the server is an extra
