"""FastAPI plumbing shared by both APIs: JSON errors everywhere, health and readiness probes (the
error answers are declared in OpenAPI by http_api.openapi).

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
from starlette.types import Message, Receive, Scope, Send

from http_api.middleware import HttpMiddleware
from http_api.openapi import INTERNAL_DETAIL
from runtime.tracing import TraceMiddleware

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 1
UNAVAILABLE_DETAIL = "service temporarily unavailable"

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


class CatchAllMiddleware(HttpMiddleware):
    """Outermost net: any exception the app lets through becomes a logged 500 with an error id."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
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
    app.add_middleware(TraceMiddleware)  # outermost: even the 500's log line has the trace id


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
