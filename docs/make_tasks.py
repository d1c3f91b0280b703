"""Writes docs/tasks.md from the task registry: every built-in task type with its
parameters (type, bounds, default, description), its results and what it asks of the
cluster. `python docs/make_tasks.py` rewrites the file; `--check` exits 1 when it is
stale (tests/test_deployment.py runs that), so the page cannot drift from the code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dragon import registry  # noqa: E402

PAGE = ROOT / "docs" / "tasks.md"
HEADER = """# Task types

Generated from the registry by `python docs/make_tasks.py` (a test fails when this page is
stale); the same schemas, descriptions included, are in `/openapi.json` as `Task.<name>`.
A task is `{"task_name": NAME, ...parameters}` in `POST /v2/create` (`dragon create NAME
K=V...`). Every task type also takes `url_callback` and `url_errback` (http(s) URLs POSTed
the final status on success and on error: docs/callbacks.md) and `task_store`
(docs/storage.md); unknown parameters are ignored. Results: `values` are fields of the
result; `files` are URLs of output files in the task's store. Errors start with their
class name (`InvalidImageError: ...`).
"""
COMMON = {"url_callback", "url_errback"}


def describe(schema: dict[str, Any]) -> str:
    """A JSON schema in a few words: `integer, 1 to 10000`, `one of "jpeg", "png"`."""
    if "anyOf" in schema:
        return " or ".join(describe(part) for part in schema["anyOf"])
    if "const" in schema:
        return json.dumps(schema["const"])
    if "enum" in schema:
        return "one of " + ", ".join(json.dumps(v) for v in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "null":
        return "null"
    if kind == "array":
        kind = f"list of {describe(schema.get('items', {}))}"
    bounds = []
    for low, high, unit in (
        ("minimum", "maximum", ""),
        ("minLength", "maxLength", " characters"),
        ("minItems", "maxItems", " items"),
    ):
        if low in schema and high in schema:
            bounds.append(f"{number(schema[low])} to {number(schema[high])}{unit}")
        elif low in schema:
            bounds.append(f"at least {number(schema[low])}{unit}")
        elif high in schema:
            bounds.append(f"at most {number(schema[high])}{unit}")
    if "exclusiveMinimum" in schema:
        bounds.append(f"more than {number(schema['exclusiveMinimum'])}")
    if "pattern" in schema:
        bounds.append(f"matching `{schema['pattern']}`")
    return ", ".join([kind, *bounds])


def number(value: float) -> str:
    """0 for 0 and 0.0 alike: pydantic writes a float bound either way, by version."""
    return str(int(value)) if float(value).is_integer() else str(value)


def resources(task: registry.TaskType) -> str:
    asked = [f"{task.resources.cpus} CPU"]
    if task.resources.gpu:
        asked.append(f"{task.resources.gpu} GPU where GPUs are used (docs/deployment.md)")
    if task.resources.memory_mb:
        asked.append(f"{task.resources.memory_mb} MB of memory")
    return ", ".join(asked)


def section(task: registry.TaskType) -> str:
    schema = task.params.model_json_schema()
    required = set(schema.get("required", []))
    lines = [f"## {task.name}", ""]
    if task.doc:
        lines += [" ".join(task.doc.split()), ""]
    lines += ["| parameter | type | default | description |", "|---|---|---|---|"]
    for name, prop in schema["properties"].items():
        if name in COMMON:
            continue
        default = "required" if name in required else f"`{json.dumps(prop.get('default'))}`"
        text = prop.get("description", "").replace("|", "\\|")
        lines.append(f"| `{name}` | {describe(prop).replace('|', chr(92) + '|')} | {default} | {text} |")
    lines.append("")
    results = [
        f"values {', '.join(f'`{v}`' for v in task.values)}" if task.values else "",
        f"files {', '.join(f'`{f}`' for f in task.files)}" if task.files else "",
    ]
    lines.append(
        f"Results: {'; '.join(r for r in results if r) or 'the value returned, whole'}. "
        f"Each attempt asks {resources(task)}."
    )
    return "\n".join(lines) + "\n"


def page() -> str:
    types = registry.load()
    return "\n".join([HEADER, *(section(types[name]) for name in sorted(types))])


def main() -> None:
    text = page()
    if "--check" in sys.argv[1:]:
        if PAGE.read_text() != text:
            sys.exit(f"{PAGE.relative_to(ROOT)} is stale: run python docs/make_tasks.py")
        return
    PAGE.write_text(text)


if __name__ == "__main__":
    main()
