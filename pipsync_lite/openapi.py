"""The OpenAPI 3.1 document of the read API, built from the models its handlers use.

Each :class:`Operation` names its query/path model and its answer models; the handlers in
:mod:`api` validate with the same classes and serialize through them, so the document cannot
drift from what the server does. Pydantic writes JSON Schema 2020-12, OpenAPI 3.1's dialect.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from pipsync_lite import __version__
from pipsync_lite.api_models import Problem

PROBLEM_TYPE = "application/problem+json"
_REF = "#/components/schemas/{model}"

_PROBLEM_TEXT = {
    400: "Invalid parameter or body (`field` names it).",
    401: "Missing or wrong `Authorization: Bearer <server.api_token>`.",
    404: "Not found.",
    413: "Body over 64 KiB.",
    422: "Refused by the guard (`rule` says why).",
    429: "Rate limited (server.rate_limit): retry after `Retry-After` seconds; the alert is stored as `rate_limited`.",
    503: "Broker not connected, or the daemon is shutting down.",
}


@dataclass(frozen=True, slots=True)
class Operation:
    method: str
    path: str  # OpenAPI form: /v1/signals/{signal_id}
    operation_id: str
    summary: str
    responses: dict[int, tuple[type[BaseModel], str]]
    problems: tuple[int, ...] = ()
    query: type[BaseModel] | None = None
    path_params: type[BaseModel] | None = None
    description: str = ""
    alert_body: bool = False
    tags: tuple[str, ...] = field(default_factory=tuple)


def build_spec(operations: Sequence[Operation]) -> dict[str, Any]:
    models = {Problem}
    for op in operations:
        models.update(model for model, _ in op.responses.values())
    _, top = models_json_schema([(m, "serialization") for m in sorted(models, key=lambda m: m.__name__)], ref_template=_REF)
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "pipsync-lite read API",
            "version": __version__,
            "description": (
                "What the daemon received, decided and did. Every request needs "
                "`Authorization: Bearer <server.api_token>`; every error is RFC 7807 problem+json. "
                "Lists are newest first; pass `next_cursor` back as `cursor` for the next page."
            ),
        },
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "schemas": top.get("$defs", {}),
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "description": "server.api_token"}
            },
        },
    }


def _operation(op: Operation) -> dict[str, Any]:
    parameters = []
    if op.path_params is not None:
        parameters += _parameters(op.path_params, "path")
    if op.query is not None:
        parameters += _parameters(op.query, "query")
    responses: dict[str, Any] = {}
    for status, (model, text) in op.responses.items():
        responses[str(status)] = {
            "description": text,
            "content": {"application/json": {"schema": {"$ref": _REF.format(model=model.__name__)}}},
        }
    for status in sorted({401, *op.problems}):
        answer: dict[str, Any] = {
            "description": _PROBLEM_TEXT.get(status, "Error."),
            "content": {PROBLEM_TYPE: {"schema": {"$ref": _REF.format(model="Problem")}}},
        }
        if status == 401:
            answer["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        if status == 429:
            answer["headers"] = {"Retry-After": {"schema": {"type": "integer", "minimum": 0}}}
        responses[str(status)] = answer
    spec: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "parameters": parameters,
        "responses": responses,
    }
    if op.description:
        spec["description"] = op.description
    if op.tags:
        spec["tags"] = list(op.tags)
    if op.alert_body:
        spec["requestBody"] = {
            "required": True,
            "description": "An alert in any format the webhook takes (JSON, key=value, PineConnector).",
            "content": {
                "application/json": {"schema": {}},
                "text/plain": {"schema": {"type": "string", "maxLength": 65536}},
            },
        }
    return spec


def _parameters(model: type[BaseModel], where: str) -> list[dict[str, Any]]:
    schema = model.model_json_schema(mode="validation")
    required = set(schema.get("required", ()))
    out = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        description = prop.pop("description", None)
        prop.pop("title", None)
        if prop.get("default", ...) is None:
            prop.pop("default")
        branches = [b for b in prop.pop("anyOf", []) if b.get("type") != "null"]
        if branches:  # Optional[X]: a parameter is either given or absent, never null
            prop = {**(branches[0] if len(branches) == 1 else {"anyOf": branches}), **prop}
        parameter: dict[str, Any] = {"name": name, "in": where, "required": where == "path" or name in required, "schema": prop}
        if description:
            parameter["description"] = description
        out.append(parameter)
    return out
