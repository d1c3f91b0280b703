"""Pipelines: a task parameter that names another task's output instead of a URL.

In a create request, a parameter (or an item of a list parameter) may be
``{"task": 0}`` (the main output of the request's task at index 0),
``{"task": 0, "result": "preview"}`` (a named file result) or ``{"task": "<KEY>"}`` (a task
the same account created earlier). The service turns each reference into a *use* of the
task's record (:func:`plan`) and puts a placeholder URL in the parameter so that the task
type's own validation still runs; the shard that owns the task keeps it queued until every
task it uses has ended, then puts the real URLs in (:func:`resolve`) or ends it in a
``DependencyError``. No Ray here: the service and the shards both call it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

from dragon import registry
from dragon.errors import DependencyError, InvalidRequestError
from dragon.status import TaskRecord, is_key

PLACEHOLDER = "https://pipeline.invalid/task/"  # never fetched: the shard replaces it before the task runs
MAIN_FIRST = ("output", "export")  # where a type has several file results, these are its main output


@dataclass(frozen=True)
class Reference:
    """One ``{"task": ..., "result": ...}`` found in definition ``index``."""

    index: int
    parameter: str
    item: int | None  # the position in a list parameter
    task: int | str  # an index in the request, or an earlier task's key
    result: str | None

    @property
    def where(self) -> str:
        item = "" if self.item is None else f".{self.item}"
        return f"tasks.{self.index}.{self.parameter}{item}"


def is_reference(value: Any) -> bool:
    return isinstance(value, dict) and "task" in value


def references(definitions: list[Any]) -> list[Reference]:
    """Every reference of the request, checked for shape (not yet for what it names)."""
    found = []
    for index, definition in enumerate(definitions):
        if not isinstance(definition, dict):
            continue
        for parameter, value in definition.items():
            if parameter in ("task_name", "task_store", "url_callback", "url_errback"):
                continue
            items = enumerate(value) if isinstance(value, list) else [(None, value)]
            for item, v in items:
                if is_reference(v):
                    found.append(_reference(index, parameter, item, v))
    return found


def _reference(index: int, parameter: str, item: int | None, value: dict[str, Any]) -> Reference:
    where = f"tasks.{index}.{parameter}" + ("" if item is None else f".{item}")
    unknown = set(value) - {"task", "result"}
    if unknown:
        raise InvalidRequestError(where, f"a task reference has only 'task' and 'result', not {sorted(unknown)[0]!r}")
    task, result = value["task"], value.get("result")
    if not (isinstance(task, int) and not isinstance(task, bool)) and not is_key(task):
        raise InvalidRequestError(where, "'task' must be the index of a task of this request or a task key")
    if result is not None and (not isinstance(result, str) or not result):
        raise InvalidRequestError(where, "'result' must be the name of a file result")
    return Reference(index, parameter, item, task, result)


def check_order(refs: list[Reference], count: int) -> None:
    """Indexes name tasks of the request, and no task waits, even indirectly, on itself."""
    edges: dict[int, set[int]] = {}
    for ref in refs:
        if isinstance(ref.task, int):
            if not 0 <= ref.task < count:
                raise InvalidRequestError(ref.where, f"there is no task at index {ref.task} in this request")
            if ref.task == ref.index:
                raise InvalidRequestError(ref.where, "a task cannot use its own output")
            edges.setdefault(ref.index, set()).add(ref.task)
    state: dict[int, int] = {}  # 1: being visited, 2: done

    def visit(node: int, path: list[int]) -> None:
        state[node] = 1
        for dep in sorted(edges.get(node, ())):
            if state.get(dep) == 1:
                cycle = " -> ".join(str(n) for n in [*path[path.index(dep) :], dep])
                raise InvalidRequestError(f"tasks.{dep}", f"the tasks' references form a cycle: {cycle}")
            if dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])


def check_result(ref: Reference, task_name: str) -> None:
    """A named result must be one of the file results the used task's type declares."""
    task_type = registry.get(task_name)
    files = task_type.files if task_type is not None else ()
    if ref.result is not None and ref.result not in files:
        named = ", ".join(files) or "none"
        raise InvalidRequestError(
            ref.where, f"{task_name} has no file result {ref.result!r} (its file results: {named})"
        )
    if ref.result is None and not files:
        raise InvalidRequestError(ref.where, f"{task_name} produces no file to use")


def substitute(definition: dict[str, Any], refs: list[Reference], keys: list[str]) -> dict[str, Any]:
    """The definition with a placeholder URL in place of each of its references."""
    copy = {k: (list(v) if isinstance(v, list) else v) for k, v in definition.items()}
    for ref in refs:
        url = PLACEHOLDER + _key(ref, keys)
        if ref.item is None:
            copy[ref.parameter] = url
        else:
            copy[ref.parameter][ref.item] = url
    return copy


def uses(refs: list[Reference], keys: list[str], task_names: dict[str, str]) -> list[dict[str, Any]]:
    """What a record keeps of its references: enough to resolve them after a restart."""
    return [
        {
            "parameter": r.parameter,
            "item": r.item,
            "task": _key(r, keys),
            "index": r.task if isinstance(r.task, int) else None,
            "result": r.result,
            "task_name": task_names[_key(r, keys)],
        }
        for r in refs
    ]


def _key(ref: Reference, keys: list[str]) -> str:
    return keys[ref.task] if isinstance(ref.task, int) else ref.task


def needed(record: TaskRecord) -> list[str]:
    """The keys of the tasks ``record`` waits for, each once."""
    return list(dict.fromkeys(use["task"] for use in record.uses))


def resolve(record: TaskRecord, ended: dict[str, dict[str, Any]]) -> TaskRecord | str:
    """The record with the used outputs' URLs in its parameters, given the public statuses
    of the tasks it uses (all ended); or the DependencyError it ends in."""
    params = {k: (list(v) if isinstance(v, list) else v) for k, v in record.params.items()}
    for use in record.uses:
        status = ended[use["task"]]
        name = f"task {use['index']} ({use['task']})" if use["index"] is not None else f"task {use['task']}"
        if status["status"] != "success":
            return str(DependencyError(f"{name} ended in error: {_error_text(status.get('error'))}"))
        url = output_url(use["task_name"], status.get("result"), use["result"])
        if url is None:
            return str(DependencyError(f"{name} has no file result {use['result'] or 'output'!r}"))
        if use["item"] is None:
            params[use["parameter"]] = url
        else:
            params[use["parameter"]][use["item"]] = url
    return replace(record, params=params)


def output_url(task_name: str, result: Any, name: str | None) -> str | None:
    """The URL of a finished task's file result ``name``, or of its main output."""
    if not isinstance(result, dict):
        return None
    if name is None:
        task_type = registry.get(task_name)
        files = task_type.files if task_type is not None else ()
        order = [n for n in MAIN_FIRST if n in files] + [n for n in files if n not in MAIN_FIRST]
        name = next((n for n in order if isinstance(result.get(n), str)), None)
    value = result.get(name) if name else None
    return value if isinstance(value, str) else None


def _error_text(error: Any) -> str:
    if isinstance(error, dict):  # invalid parameters: {"parameters": {...}}
        return "InvalidParametersError: " + json.dumps(error, sort_keys=True)
    return str(error)
