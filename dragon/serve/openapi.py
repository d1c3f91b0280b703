"""The OpenAPI document, generated: bodies and queries from the shapes of
dragon/protocol.py (the same models the routes parse with), one schema per task type
from the registry, and the spec's error body for every refusal.

Routes read their JSON bodies themselves (the original clients send JSON whatever the
Content-Type), so each route names its shape with :func:`body_of` or :func:`query_of`.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, TypeAdapter

from dragon import protocol, registry
from dragon.storage.stores import TaskStore

REF = "#/components/schemas/{model}"
SHAPES: list[type[BaseModel]] = [
    protocol.CreateRequest,
    protocol.StatusRequest,
    protocol.KeysRequest,
    protocol.ListFilesQuery,
    protocol.DeleteFilesRequest,
    protocol.ExpirationRequest,
    protocol.BatchRequest,
    protocol.HistoryQuery,
    protocol.Status,
    protocol.HistoryPage,
    protocol.SxmlCheckRequest,
    protocol.SxmlCheck,
    protocol.Errors,
]
CREDENTIALS = {
    "secret": {"type": "string", "description": "the account's secret (or the Authorization header)"},
    "api_key": {"type": "string", "description": "an api key; the Referer must be whitelisted"},
}
INPUTS = ("url", "urls", "images")  # the input URL parameters, where a pipeline reference is documented
TASK_REFERENCE = {
    "type": "object",
    "required": ["task"],
    "additionalProperties": False,
    "description": "another task's output as this input (docs/api.md, Pipelines)",
    "properties": {
        "task": {"oneOf": [{"type": "integer", "minimum": 0, "description": "an index in this request"}, protocol.KEY]},
        "result": {"type": "string", "description": "a file result of that task; default: its main output"},
    },
}
ERRORS = {
    code: {"description": why, "content": {"application/json": {"schema": {"$ref": REF.format(model="Errors")}}}}
    for code, why in (
        ("400", "malformed request"),
        ("401", "credentials refused, or account limits reached"),
        ("404", "no such route or file"),
        ("503", "temporarily unavailable: retry later"),
    )
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


STATUSES = {
    "responses": {
        "200": {
            "description": "the statuses, in the order of the request's keys or tasks",
            "content": {"application/json": {"schema": {"type": "array", "items": _ref("Status")}}},
        }
    }
}
HISTORY = {
    "responses": {
        "200": {
            "description": "the caller's tasks, newest first, and the next page's cursor",
            "content": {"application/json": {"schema": _ref("HistoryPage")}},
        }
    }
}
SXML_CHECK = {
    "responses": {
        "200": {
            "description": "whether the definition is valid: its errors at their lines, or its timing",
            "content": {"application/json": {"schema": _ref("SxmlCheck")}},
        }
    }
}
LINES = {
    "responses": {
        "200": {
            "description": "line 1: the array of statuses; then one status per line, as each "
            "changes, until all have ended",
            "content": {"application/x-json-stream": {"schema": {"type": "string"}}},
        }
    }
}


def body_of(model: type[BaseModel]) -> dict[str, Any]:
    """A route's ``openapi_extra``: its JSON body is ``model``, credentials riding along;
    task definitions are described by the registry's schemas."""
    schema = model.model_json_schema(ref_template=REF, by_alias=True)
    schema.pop("$defs", None)
    schema["properties"] = {**schema.get("properties", {}), **CREDENTIALS}
    if model is protocol.CreateRequest:
        schema["properties"]["tasks"] = {"oneOf": [_ref("Task"), {"type": "array", "items": _ref("Task")}]}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def query_of(model: type[BaseModel]) -> dict[str, Any]:
    """A route's ``openapi_extra``: its query parameters are ``model``'s fields."""
    schema = model.model_json_schema(ref_template=REF)
    required = set(schema.get("required", []))
    parameters = [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": field,
            "style": "form",
            "explode": True,
            "description": field.get("description", ""),
        }
        for name, field in schema.get("properties", {}).items()
    ]
    parameters.append(
        {
            "name": "secret",
            "in": "query",
            "required": False,
            "schema": {"type": "string"},
            "description": "the account's secret, for the routes that need it",
        }
    )
    return {"parameters": parameters}


def document(app: FastAPI) -> dict[str, Any]:
    """The document, built once per process."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for model in SHAPES:
        schema = model.model_json_schema(ref_template=REF, by_alias=True)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    schemas.update(_task_schemas())
    doc["components"]["securitySchemes"] = {
        "secret": {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Secret <SECRET>` or `Api-Key <KEY>`; or `secret`/`api_key` in the body or query",
        },
    }
    doc["security"] = [{"secret": []}, {}]
    for methods in doc["paths"].values():  # FastAPI's 422 never happens: bad requests are 400s
        for operation in methods.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for code, answer in ERRORS.items():
                responses.setdefault(code, answer)
    app.openapi_schema = doc
    return doc


def _task_schemas() -> dict[str, Any]:
    """``Task.<name>`` per task type (its parameters, described, plus task_name and
    task_store), and ``Task``, their union keyed by ``task_name``."""
    schemas: dict[str, Any] = {}
    store = TypeAdapter(TaskStore).json_schema(ref_template=REF)
    schemas.update(store.pop("$defs", {}))
    schemas["TaskStore"] = store
    mapping = {}
    for name in registry.names():
        task_type = registry.get(name)
        assert task_type is not None
        schema = task_type.params.model_json_schema(ref_template=REF)
        schemas.update(schema.pop("$defs", {}))
        for input_name in INPUTS:
            if input_name in schema.get("properties", {}):
                schema["properties"][input_name] = _or_reference(schema["properties"][input_name])
        schema["properties"] = {
            "task_name": {"type": "string", "const": name, "enum": [name]},
            **schema.get("properties", {}),
            "task_store": _ref("TaskStore"),
        }
        schema["required"] = ["task_name", *schema.get("required", [])]
        schema["title"] = name
        schema["description"] = task_type.doc.split("\n\n")[0]
        schema["x-dragon-values"] = list(task_type.values)
        schema["x-dragon-files"] = list(task_type.files)
        mapping[name] = REF.format(model=f"Task.{name}")
        schemas[f"Task.{name}"] = schema
    schemas["TaskReference"] = TASK_REFERENCE
    schemas["Task"] = {
        "oneOf": [{"$ref": ref} for ref in mapping.values()],
        "discriminator": {"propertyName": "task_name", "mapping": mapping},
    }
    return schemas


def _or_reference(field: dict[str, Any]) -> dict[str, Any]:
    """A URL parameter (or list of URLs) that may also be a pipeline reference."""
    field = dict(field)
    if field.get("type") == "array":
        field["items"] = {"oneOf": [field.get("items", {}), _ref("TaskReference")]}
        return field
    described: dict[str, Any] = {k: field.pop(k) for k in ("description", "title") if k in field}
    return {**described, "oneOf": [field, _ref("TaskReference")]}
