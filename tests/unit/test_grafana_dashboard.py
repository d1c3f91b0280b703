"""deploy/grafana-dashboard.json draws only metrics that dragon/metrics.py exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_every_metric_the_dashboard_queries_is_one_dragon_exports() -> None:
    board = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text())
    source = (ROOT / "dragon" / "metrics.py").read_text()
    exported = set(re.findall(r'"(dragon_[a-z_]+)"', source))
    queried = {
        re.sub(r"_(total|bucket|count|sum)$", "", name.removeprefix("ray_"))
        for panel in board["panels"]
        for target in panel["targets"]
        for name in re.findall(r"ray_dragon_[a-z_]+", target["expr"])
    }
    assert queried == exported  # each drawn, none misspelt
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
