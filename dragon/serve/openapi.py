"""The OpenAPI document: every route, and one schema per task type from the registry.

Handlers read their JSON bodies themselves (the original clients send JSON whatever
the Content-Type), so FastAPI cannot see the bodies; this module describes them, the
query parameters and the answers, on top of what FastAPI generates from the routes.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import TypeAdapter

from dragon import registry
from dragon.storage.stores import TaskStore

REF = "#/components/schemas/{model}"
KEY = {"type": "string", "pattern": "^[A-Z2-7]{26}$", "description": "a task key"}
KEYS = {"oneOf": [KEY, {"type": "array", "items": KEY, "minItems": 1}]}
BOOL = {"oneOf": [{"type": "boolean"}, {"type": "string", "enum": ["true", "false", "1", "0", "yes", "no", "on", "off"]}]}
CREDENTIALS = {
    "secret": {"type": "string", "description": "the account's secret (or the Authorization header)"},
    "api_key": {"type": "string", "description": "an api key; the Referer must be whitelisted"},
}
STREAM = "application/x-json-stream"
PATH = {"name": "path", "in": "path", "required": True, "schema": {"type": "string"},
        "description": "a file or a directory (ending with /) under the account's root"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _body(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    schema = {"type": "object", "properties": {**CREDENTIALS, **properties}}
    if required:
        schema["required"] = required
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _query(name: str, schema: dict[str, Any], description: str = "", array: bool = False) -> dict[str, Any]:
    param = {"name": name, "in": "query", "required": False, "schema": schema, "description": description}
    if array:
        param.update(style="form", explode=True)
    return param


def _answer(schema: dict[str, Any], media: str = "application/json", description: str = "OK") -> dict[str, Any]:
    return {"description": description, "content": {media: {"schema": schema}}}


ERRORS = {
    "400": _answer(_ref("Errors"), description="malformed request"),
    "401": _answer(_ref("Errors"), description="credentials missing or refused, or account limits reached"),
    "404": _answer(_ref("Errors"), description="no such route or file"),
    "503": _answer(_ref("Errors"), description="temporarily unavailable: retry"),
}
STATUSES = _answer({"type": "array", "items": _ref("Status")})
STATUS_STREAM = _answer({"type": "string", "description": "line 1: the array of statuses; then one status per line"},
                        STREAM)


def document(app: FastAPI) -> dict[str, Any]:
    """The document, built once per process."""
    if app.openapi_schema:
        return app.openapi_schema
    doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    schemas.update(_task_schemas())
    schemas.update(_wire_schemas())
    doc["components"]["securitySchemes"] = {
        "secret": {"type": "apiKey", "in": "header", "name": "Authorization",
                   "description": "`secret <SECRET>` or `api-key <KEY>`; or `secret`/`api_key` in the body or query"},
    }
    doc["security"] = [{"secret": []}, {}]
    for path, methods in _operations().items():
        for method, extra in methods.items():
            operation = doc["paths"].setdefault(path, {}).setdefault(method, {})
            operation.update(extra)
            operation["responses"] = {**extra.get("responses", {"200": _answer({})}), **ERRORS}
    for methods in doc["paths"].values():  # FastAPI's 422 never happens: bad requests are 400s
        for operation in methods.values():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for code, answer in ERRORS.items():
                responses.setdefault(code, answer)
    app.openapi_schema = doc
    return doc


def _task_schemas() -> dict[str, Any]:
    """``Task.<name>`` per task type (its parameters plus task_name, task_store), and
    ``Task``, their union keyed by ``task_name``."""
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
        schema["properties"] = {"task_name": {"type": "string", "const": name, "enum": [name]},
                                **schema.get("properties", {}), "task_store": _ref("TaskStore")}
        schema["required"] = ["task_name", *schema.get("required", [])]
        schema["title"] = name
        schema["description"] = task_type.doc.split("\n\n")[0]
        schema["x-dragon-values"] = list(task_type.values)
        schema["x-dragon-files"] = list(task_type.files)
        mapping[name] = REF.format(model=f"Task.{name}")
        schemas[f"Task.{name}"] = schema
    schemas["Task"] = {"oneOf": [{"$ref": ref} for ref in mapping.values()],
                       "discriminator": {"propertyName": "task_name", "mapping": mapping}}
    return schemas


def _wire_schemas() -> dict[str, Any]:
    events = {"type": "object", "additionalProperties": {"type": "string", "format": "date-time"},
              "description": "when the task was queued, started and ended"}
    return {
        "Status": {
            "type": "object",
            "required": ["key", "status", "events"],
            "properties": {
                "key": KEY,
                "status": {"type": "string", "enum": ["queued", "executing", "success", "error"]},
                "events": events,
                "progress": {"description": "a percentage or the task's own progress value"},
                "result": {"description": "output values and file URLs (partial while executing)"},
                "error": {"description": "`ErrorClass: message`, or {\"parameters\": {field: [messages]}}"},
                "details": {"type": "object", "description": "the task's definition (credentials redacted), attempts, callback, warnings"},
            },
        },
        "Errors": {
            "type": "object",
            "required": ["status", "errors"],
            "properties": {
                "status": {"type": "string", "enum": ["error"]},
                "errors": {"type": "array", "items": {
                    "type": "object", "required": ["name", "location", "description"],
                    "properties": {"name": {"type": "string"}, "location": {"type": "string"},
                                   "description": {"type": "string"}}}},
            },
        },
        "Listing": {
            "type": "object",
            "properties": {
                "files": {"type": "array", "items": {"type": "object", "properties": {
                    "name": {"type": "string"}, "size": {"type": "integer"}, "last_modified": {"type": "string"}}}},
                "directories": {"type": "array", "items": {"type": "string"}},
                "usage": {"type": "integer"},
            },
        },
        "Uploaded": {
            "type": "object",
            "properties": {"url": {"type": "string"}, "size": {"type": "integer"}, "content_type": {"type": "string"}},
        },
    }


def _operations() -> dict[str, dict[str, Any]]:
    tasks = {"oneOf": [_ref("Task"), {"type": "array", "items": _ref("Task")}]}
    idempotency = {"name": "Idempotency-Key", "in": "header", "required": False, "schema": {"type": "string", "maxLength": 255}}
    status_query = [_query("tasks", {"type": "array", "items": KEY}, "task keys", array=True),
                    _query("block", BOOL, "wait until every task has ended"), _query("details", BOOL, "add details")]
    stream_get = {"parameters": [status_query[0]], "responses": {"200": STATUS_STREAM}}
    stream_post = {"requestBody": _body({"tasks": KEYS}, ["tasks"]), "responses": {"200": STATUS_STREAM}}
    files_get = {"parameters": [_query("recursive", BOOL), _query("secret", {"type": "string"})],
                 "responses": {"200": _answer(_ref("Listing"))}}
    files_delete = {
        "requestBody": _body({"urls": {"type": "array", "items": {"type": "string"}}, "dry_run": BOOL,
                              "from": {"type": "string", "format": "date-time"}, "to": {"type": "string", "format": "date-time"},
                              "max_age": {"type": "number", "minimum": 0}}),
        "responses": {"200": _answer({"type": "object"})},
    }
    return {
        "/v2/create": {"post": {"parameters": [idempotency], "requestBody": _body({"tasks": tasks, "block": BOOL}, ["tasks"]),
                                "responses": {"200": STATUSES}}},
        "/v2/create_stream": {"post": {"parameters": [idempotency], "requestBody": _body({"tasks": tasks}, ["tasks"]),
                                       "responses": {"200": STATUS_STREAM}}},
        "/v2/batch": {"post": {"parameters": [idempotency], "requestBody": _body({
            "task_name": {"type": "string", "enum": [n for n in registry.names() if n != "batch"]},
            "input": {"type": "string", "format": "uri", "description": "manifest URL (.parquet, .csv or .jsonl)"},
            "params": {"type": "object"}, "task_store": _ref("TaskStore"),
            "url_callback": {"type": "string", "format": "uri"}, "url_errback": {"type": "string", "format": "uri"},
        }, ["task_name", "input"]), "responses": {"200": _answer(_ref("Status"))}}},
        "/v2/cancel": {"post": {"requestBody": _body({"tasks": KEYS}, ["tasks"]), "responses": {"200": _answer({
            "type": "object",
            "properties": {"canceled": {"type": "array", "items": KEY}, "already_ended": {"type": "array", "items": KEY},
                           "statuses": {"type": "array", "items": _ref("Status")}}})}}},
        "/v2/status": {"get": {"parameters": status_query, "responses": {"200": STATUSES}},
                       "post": {"requestBody": _body({"tasks": KEYS, "block": BOOL, "details": BOOL}, ["tasks"]),
                                "responses": {"200": STATUSES}}},
        "/v2/status_stream": {"get": stream_get, "post": stream_post},
        "/v2/stream": {"get": stream_get, "post": stream_post},
        "/v2/storage/files": {"get": files_get, "delete": files_delete},
        "/v2/storage/files/{path}": {
            "get": {**files_get, "parameters": [PATH, *files_get["parameters"]]},
            "delete": {**files_delete, "parameters": [PATH]},
        },
        "/v2/storage/expiration": {
            "get": {"parameters": [_query("secret", {"type": "string"})], "responses": {"200": _answer({"type": "integer"})}},
            "post": {"requestBody": _body({"days": {"type": "integer", "minimum": 0, "maximum": 36_500}}, ["days"]),
                     "responses": {"200": _answer({"type": "integer"})}},
        },
        "/v2/storage/upload": {"post": {
            "parameters": [_query("filename", {"type": "string"}, "the file's name (its extension is kept)")],
            "requestBody": {"required": True, "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                                   "format": "binary"}}}},
            "responses": {"200": _answer(_ref("Uploaded")),
                          "413": _answer(_ref("Errors"), description="the file is over the size limit")}}},
    }
