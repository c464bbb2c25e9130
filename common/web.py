"""FastAPI plumbing shared by both APIs: JSON errors everywhere, health and readiness probes, and
the error answers every operation can give, declared in OpenAPI.

Error policy (the same in both APIs):
- the client's mistake: 4xx with a JSON `detail` (422 in FastAPI's validation shape, naming the
  field);
- a dependency (PostgreSQL) unreachable: 503 + `Retry-After`, JSON `{"detail": ...}`;
- anything else is a bug: 500 JSON `{"detail": "internal error", "error_id": ...}`, and the same
  id is logged with the traceback. The catch-all is a pure ASGI middleware: Starlette's own
  last-resort handler re-raises after answering, which makes uvicorn log "Exception in ASGI
  application" and, if the answer had not gone out, drop the connection. Nothing escapes ours.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 1
UNAVAILABLE_DETAIL = "service temporarily unavailable"
INTERNAL_DETAIL = "internal error"

OnUnavailable = Callable[[Request, Exception], Awaitable[None]]


class AsciiJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped: a body that echoes client input (a lone surrogate, say) can
    always be encoded, so answering a bad request can never itself fail."""

    def render(self, content: Any) -> bytes:
        text = json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
        return text.encode()


def unavailable_response(detail: str = UNAVAILABLE_DETAIL) -> JSONResponse:
    return JSONResponse(
        status_code=503,
        content={"detail": detail},
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


class CatchAllMiddleware:
    """Outermost net: any exception the app lets through becomes a logged 500 with an error id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            error_id = uuid.uuid4().hex
            log.exception(
                "unhandled error",
                extra={
                    "error_id": error_id,
                    "method": scope.get("method"),
                    "path": scope.get("path"),
                    "response_started": started,
                },
            )
            if started:
                return  # too late for a status; the server ends this response as it can
            response = JSONResponse(
                status_code=500, content={"detail": INTERNAL_DETAIL, "error_id": error_id}
            )
            await response(scope, receive, send)


def install_error_handlers(
    app: FastAPI,
    unavailable: Sequence[type[Exception]] = (),
    on_unavailable: OnUnavailable | None = None,
) -> None:
    """`unavailable`: exception types meaning a dependency is down (answered 503 + Retry-After);
    `on_unavailable` runs after such an error (e.g. to drop the pool's dead connections)."""

    async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        # FastAPI's shape minus `input`: never echo what was sent (a password, say) back.
        errors = [
            {k: v for k, v in error.items() if k in ("loc", "msg", "type")}
            for error in exc.errors()
        ]
        return AsciiJSONResponse(status_code=422, content={"detail": errors})

    async def _dependency_down(request: Request, exc: Exception) -> JSONResponse:
        log.warning(
            "dependency unavailable",
            extra={"path": request.url.path, "error": type(exc).__name__, "reason": str(exc)},
        )
        if on_unavailable is not None:
            try:
                await on_unavailable(request, exc)
            except Exception:
                log.exception("recovery hook failed")
        return unavailable_response()

    async def _http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(app, request.scope))
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=headers)

    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for exc_type in unavailable:
        app.add_exception_handler(exc_type, _dependency_down)
    app.add_middleware(CatchAllMiddleware)


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def _allowed_methods(app: FastAPI, scope: Scope) -> list[str]:
    """Every method some route serves at this path. Starlette's 405 names only the first route
    that matched the path (PATCH and DELETE /tasks/{id} are two routes). Only on a 405."""
    return [
        method
        for method in _METHODS
        if any(
            route.matches({**scope, "method": method})[0] is Match.FULL
            for route in app.router.routes
        )
    ]


def validation_error(location: tuple[str, ...], message: str) -> RequestValidationError:
    """A 422 in the same shape as FastAPI's own, for checks done by hand (e.g. a cursor)."""
    return RequestValidationError([{"loc": location, "msg": message, "type": "value_error"}])


# --- OpenAPI: the error answers every operation can give ------------------------------------

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


# --- health ---------------------------------------------------------------------------------

_READY_RESPONSES: dict[int | str, dict[str, Any]] = {
    503: {
        "description": "Not ready: a dependency is unreachable",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "properties": {"status": {"type": "string", "const": "unavailable"}},
                    "required": ["status"],
                }
            }
        },
    }
}


def health_router(is_ready: Callable[[], bool]) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/ready", response_model=dict[str, str], responses=_READY_RESPONSES)
    async def ready() -> JSONResponse:
        try:
            ok = await run_in_threadpool(is_ready)
        except Exception:
            ok = False
        if ok:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "unavailable"}, status_code=503)

    return router
