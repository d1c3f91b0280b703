"""The fast part of the reliability suite (benchmarks/reliability.py --quick sizes):
chaos with and without a restart, API fuzzing, hostile media, slow clients, load."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from benchmarks import reliability
from tests.conftest import DragonProcess
from tests.support.servers import Origin

QUICK = reliability.SIZES["quick"]


@pytest.fixture()
def own_account(dragon: DragonProcess) -> dict[str, Any]:
    """A fresh account, so storage listings and fuzzed deletions see only this test's files."""
    return dragon.cli("accounts", "create", f"reliability-{uuid.uuid4().hex[:8]}")


def check_accounting(figures: dict[str, Any]) -> None:
    assert figures["statuses"] == figures["tasks"] == figures["ended"]
    assert figures["missing"] == 0 and figures["duplicated"] == 0
    assert figures["outputs_missing"] == 0 and figures["orphans"] == 0
    assert set(figures["errors"]) <= {"WorkerCrashedError"}  # only a task killed on every attempt may fail


def test_chaos_loses_no_task(dragon: DragonProcess, own_account: dict, origin: Origin) -> None:
    figures = reliability.chaos(
        dragon,
        own_account["secret"],
        origin,
        QUICK["chaos_tasks"],
        QUICK["worker_kills"],
        QUICK["status_kills"],
        QUICK["replica_kills"],
    )
    check_accounting(figures)
    assert figures["kills"]["status"] == QUICK["status_kills"] and figures["kills"]["replica"] == QUICK["replica_kills"]


def test_chaos_with_a_service_restart_loses_no_task(dragon: DragonProcess, own_account: dict, origin: Origin) -> None:
    figures = reliability.chaos(dragon, own_account["secret"], origin, QUICK["chaos_tasks"], 2, 0, 0, restart=True)
    check_accounting(figures)
    assert figures["kills"]["restart"] == 1


def test_fuzzing_the_api_finds_no_server_error(dragon: DragonProcess, own_account: dict) -> None:
    figures = reliability.fuzz(dragon.url, own_account["secret"], QUICK["fuzz_seconds"])
    assert figures["cases"] > 500, figures["report"]
    assert figures["failures"] == 0 and "Failures:" not in figures["report"], figures["report"]
    # schemathesis may stop on an error of its own ("Runtime Error", e.g. while compiling
    # a generated case); any other error is the API's
    assert figures["exit"] == 0 or "Runtime Error" in figures["report"], figures["report"]


def test_hostile_media_ends_in_results_or_clear_errors(
    dragon: DragonProcess, own_account: dict, origin: Origin, tmp_path: Path
) -> None:
    figures = reliability.hostile_media(dragon, own_account["secret"], origin, tmp_path)
    assert figures["tasks"] > 600
    assert figures["unclear"] == [] and figures["crashed"] == []
    assert figures["success"] > 0 and figures["clear_errors"] > 0
    assert figures["peak_worker_mib"] < 1500


def test_slow_clients_do_not_hold_up_the_api(dragon: DragonProcess) -> None:
    figures = reliability.slow_clients(dragon.url, QUICK["slow_clients"], seconds=3)
    assert figures["health_checks"] > 5 and figures["worst_ms"] < 2000


def test_streams_and_blocking_creates_under_load(dragon: DragonProcess, own_account: dict) -> None:
    figures = reliability.load(
        dragon.url, own_account["secret"], QUICK["streams"], QUICK["creators"], QUICK["load_seconds"]
    )
    assert figures["streams_held"] == figures["streams_ended_ok"] == QUICK["streams"]
    assert figures["failures"] == 0 and figures["creates"] > 0, figures
