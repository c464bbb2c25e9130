"""FastAPI plumbing shared by both APIs: JSON errors everywhere, health and readiness probes."""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

log = logging.getLogger(__name__)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Last resort: answer JSON and log the cause; never leak internals to the client.
        log.exception("unhandled error", extra={"path": request.url.path})
        return JSONResponse(status_code=503, content={"detail": "service temporarily unavailable"})


def health_router(is_ready: Callable[[], bool]) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    @router.get("/ready")
    async def ready() -> JSONResponse:
        try:
            ok = await run_in_threadpool(is_ready)
        except Exception:
            ok = False
        if ok:
            return JSONResponse({"status": "ready"})
        return JSONResponse({"status": "unavailable"}, status_code=503)

    return router
