"""The error answers every operation can give (see http_api.errors's error policy), declared in each
API's OpenAPI spec so that a generated client is correct: 500 and 503 bodies everywhere, 401 where
a bearer token is required, 400 where a body is read, and the 422 shape both APIs really send."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

INTERNAL_DETAIL = "internal error"

_ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "properties": {"detail": {"title": "Detail", "type": "string"}},
    "required": ["detail"],
}
_INTERNAL_ERROR_SCHEMA = {
    "title": "InternalError",
    "type": "object",
    "properties": {
        "detail": {"title": "Detail", "type": "string", "const": INTERNAL_DETAIL},
        "error_id": {
            "title": "Error Id",
            "type": "string",
            "description": "Quote it when reporting the problem: the log holds the cause.",
        },
    },
    "required": ["detail", "error_id"],
}
_VALIDATION_ERROR_SCHEMA = {
    "title": "ValidationError",
    "type": "object",
    "properties": {
        "loc": {
            "title": "Location",
            "type": "array",
            "items": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "description": 'Where the problem is, e.g. ["body", "title"]',
        },
        "msg": {"title": "Message", "type": "string"},
        "type": {"title": "Error Type", "type": "string"},
    },
    "required": ["loc", "msg", "type"],
}
_HTTP_VALIDATION_ERROR_SCHEMA = {
    "title": "HTTPValidationError",
    "type": "object",
    "properties": {
        "detail": {
            "title": "Detail",
            "type": "array",
            "items": {"$ref": "#/components/schemas/ValidationError"},
        }
    },
    "required": ["detail"],
}


def error_response(description: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An OpenAPI response whose body is `{"detail": "<text>"}`; `headers`: name → description."""
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if headers:
        response["headers"] = {
            name: {"description": text, "schema": {"type": "string"}}
            for name, text in headers.items()
        }
    return response


UNAUTHORIZED = error_response(
    "Missing, invalid or expired bearer token",
    {"WWW-Authenticate": "`Bearer`"},
)
BAD_BODY = error_response("The body cannot be read as UTF-8 JSON")
UNAVAILABLE = error_response(
    "A dependency (the database) is unreachable: retry after `Retry-After` seconds",
    {"Retry-After": "Seconds to wait before retrying"},
)
INTERNAL = {
    "description": "A bug: quote `error_id` when reporting it",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/InternalError"}}},
}


def _optional_is_absent(parameter: dict[str, Any]) -> None:
    """FastAPI declares an optional parameter (`str | None = None`) as "string or null", but a
    query string or header cannot carry a JSON null: "null" would be the text "null". Optional
    means "may be left out", which `required: false` already says: keep only the real type."""
    schema = parameter.get("schema", {})
    alternatives = schema.get("anyOf")
    if parameter.get("required") or not alternatives:
        return
    kept = [s for s in alternatives if s != {"type": "null"}]
    if len(kept) == 1 and len(kept) < len(alternatives):
        del schema["anyOf"]
        schema.update(kept[0])


def declare_error_responses(spec: dict[str, Any]) -> dict[str, Any]:
    """Add to every operation of `spec` the error answers the error policy above can give: 500 and
    503 everywhere, 401 wherever a bearer token is required; and the bodies' schemas. Optional
    parameters are declared as what a client can actually send (see _optional_is_absent)."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["Error"] = _ERROR_SCHEMA
    schemas["InternalError"] = _INTERNAL_ERROR_SCHEMA
    schemas["ValidationError"] = _VALIDATION_ERROR_SCHEMA
    schemas["HTTPValidationError"] = _HTTP_VALIDATION_ERROR_SCHEMA
    for path_item in spec.get("paths", {}).values():
        for operation in path_item.values():
            for parameter in operation.get("parameters", []):
                _optional_is_absent(parameter)
            responses = operation.setdefault("responses", {})
            if operation.get("security"):
                responses.setdefault("401", UNAUTHORIZED)
            if "requestBody" in operation:
                responses.setdefault("400", BAD_BODY)
            responses.setdefault("500", INTERNAL)
            responses.setdefault("503", UNAVAILABLE)
    return spec


def install_openapi(app: FastAPI, extend: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Build the spec once, with the common error answers (and `extend`'s additions)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = declare_error_responses(FastAPI.openapi(app))
            if extend is not None:
                extend(spec)
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
