"""Writes constraints.txt: every package `pip install '.[server,test,bench]'` resolves to
today, as `name==version`, for the Python running this script (`make lock`).

`make install`, `make test`, CI and deploy/Dockerfile install with `-c constraints.txt`, so
they all get the versions the suite last passed with; pyproject.toml keeps the floors.
pip resolves without installing (`--dry-run --report`), so this takes a minute, not the
gigabytes of an install.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXTRAS = ".[server,test,bench]"
PROJECT = "dragon-tasks"


def resolve() -> dict[str, str]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--dry-run",
                "--ignore-installed",
                "--quiet",
                "--report",
                str(report),
                EXTRAS,
            ],
            cwd=ROOT,
            check=True,
        )
        installs = json.loads(report.read_text())["install"]
    return {
        i["metadata"]["name"].lower(): i["metadata"]["version"]
        for i in installs
        if i["metadata"]["name"].lower() != PROJECT
    }


def main() -> None:
    pins = resolve()
    header = [
        "# The versions every install of this repository uses: make install/test, CI, deploy/Dockerfile.",
        f"# Resolved by `make lock` (deploy/lock.py) with Python {platform.python_version()} on "
        f"{platform.system()} {platform.machine()}; the floors are in pyproject.toml.",
    ]
    lines = [f"{name}=={version}" for name, version in sorted(pins.items())]
    (ROOT / "constraints.txt").write_text("\n".join(header + lines) + "\n")
    print(f"constraints.txt: {len(lines)} packages")


if __name__ == "__main__":
    main()
