"""Composition root of the query API: adapters (read model, read-your-writes waiter) are built from
settings at startup, or injected (tests pass fakes or their own database)."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import psycopg
from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from psycopg_pool import PoolTimeout

from common.settings import DatabaseSettings, QueryApiSettings, auth_settings, database_settings
from common.web import health_router, install_error_handlers
from query_api.auth import SECURITY_SCHEMES, TokenVerifier
from query_api.deps import Waiter
from query_api.freshness import PositionWaiter
from query_api.repository import PostgresReadModel, ReadModel, make_pool
from query_api.routes import router


def create_app(
    read_model: ReadModel | None = None,
    waiter: Waiter | None = None,
    *,
    settings: QueryApiSettings | None = None,
    db: DatabaseSettings | None = None,
) -> FastAPI:
    """Without arguments: PostgreSQL from DatabaseSettings. `db` alone: that database. `read_model`
    (and `waiter`): injected adapters, e.g. fakes for unit tests."""
    settings = settings or QueryApiSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = db or database_settings()
        async with AsyncExitStack() as stack:
            reads = read_model
            if reads is None:
                pool = make_pool(database.conninfo, database.POSTGRES_POOL_SIZE)
                await pool.open()
                stack.push_async_callback(pool.close)
                reads = PostgresReadModel(pool)
            wait = waiter
            if wait is None:
                listener = PositionWaiter(database.conninfo, reads.positions)
                await listener.start()
                stack.push_async_callback(listener.stop)
                wait = listener
            app.state.tokens = TokenVerifier(auth_settings)
            app.state.read_model = reads
            app.state.waiter = wait
            app.state.settings = settings
            app.state.database = database
            # Everything allocated so far lives as long as the process: keep the collector from
            # rescanning it (shorter gc pauses, i.e. a better p99).
            gc.freeze()
            yield

    app = FastAPI(title="TODO query API", version="1.0.0", lifespan=lifespan)
    install_error_handlers(app)

    async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            content={"detail": "service temporarily unavailable"},
            headers={"Retry-After": "1"},
        )

    for exc_type in (psycopg.OperationalError, PoolTimeout):
        app.add_exception_handler(exc_type, database_unavailable)
    app.include_router(router)

    def read_db_reachable() -> bool:
        database: DatabaseSettings = app.state.database
        with psycopg.connect(database.conninfo, connect_timeout=2) as conn:
            conn.execute("SELECT 1 FROM tasks LIMIT 0")
        return True

    app.include_router(health_router(read_db_reachable))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = FastAPI.openapi(app)
            schema.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
    return app
