"""Composition root of the query API (`python -m query_api` serves what `create_app` builds): the
app, its adapters (read model, read-your-writes waiter, token verifier) and its health routes,
built from settings at startup, or from adapters passed in (tests pass fakes or their own
database)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from psycopg_pool import AsyncConnectionPool

from http_api.auth import TokenVerifier
from http_api.errors import health_router, install_error_handlers
from http_api.metrics import FASTAPI_TELEMETRY_OFF, install_http_metrics
from http_api.openapi import install_openapi
from query_api.deps import Waiter
from query_api.freshness import PositionWaiter, ReplicaPositionWaiter
from query_api.repository import PostgresReadModel, ReadModel, make_pool
from query_api.routes import router
from query_api.settings import QueryApiSettings
from query_api.stream import StreamLimits
from query_api.stream import router as stream_router
from runtime import metrics
from runtime.process import freeze_startup_heap
from runtime.settings import AuthSettings, DatabaseSettings, auth_settings, database_settings

log = logging.getLogger(__name__)


class _PoolDoctor:
    """After PostgreSQL restarts, the pool's idle connections are dead but it does not know: when
    a query fails for that reason, check them all once (in the background) and replace the dead."""

    def __init__(self) -> None:
        self.pool: AsyncConnectionPool[Any] | None = None
        self._running: asyncio.Task[None] | None = None

    async def on_unavailable(self, request: Request, exc: Exception) -> None:
        if self.pool is not None and (self._running is None or self._running.done()):
            self._running = asyncio.create_task(self._check(self.pool))

    @staticmethod
    async def _check(pool: AsyncConnectionPool[Any]) -> None:
        try:
            await pool.check()
        except Exception as e:
            log.warning("checking the pool's connections failed", extra={"error": str(e)})


async def _position_waiter(
    stack: AsyncExitStack, settings: QueryApiSettings, primary: DatabaseSettings, reads: ReadModel
) -> PositionWaiter:
    """Read-your-writes: the projector's NOTIFY on the primary; with a replica, confirmed on it
    (positions read from the primary, when a first look misses, through a pool of its own)."""
    if not settings.reads_from_replica:
        return PositionWaiter(primary.conninfo, reads.positions)
    pool = make_pool(primary.conninfo, 2)
    await pool.open()
    stack.push_async_callback(pool.close)
    on_primary = PostgresReadModel(pool)
    return ReplicaPositionWaiter(primary.conninfo, reads.positions, on_primary.positions)


def create_app(
    read_model: ReadModel | None = None,
    waiter: Waiter | None = None,
    *,
    settings: QueryApiSettings | None = None,
    db: DatabaseSettings | None = None,
    auth: AuthSettings | None = None,
) -> FastAPI:
    """Without arguments: PostgreSQL from DatabaseSettings. `db` alone: that database. `read_model`
    (and `waiter`): injected adapters, e.g. fakes for unit tests. Reads go to the replica when
    `settings` name one (QUERY_REPLICA_HOST); `db` is then its primary. `auth`: the token rules
    (else read from the environment when a token is first checked)."""
    settings = settings or QueryApiSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = db or database_settings()
        reading = settings.read_database(database)  # the replica, or the primary itself
        async with AsyncExitStack() as stack:
            reads = read_model
            if reads is None:
                pool = make_pool(reading.conninfo, database.POSTGRES_POOL_SIZE)
                await pool.open()
                stack.push_async_callback(pool.close)
                doctor.pool = pool
                reads = PostgresReadModel(pool)
            wait = waiter
            if wait is None:
                listener = await _position_waiter(stack, settings, database, reads)
                await listener.start()
                stack.push_async_callback(listener.stop)
                wait = listener
            app.state.tokens = TokenVerifier(auth_settings if auth is None else lambda: auth)
            app.state.read_model = reads
            app.state.waiter = wait
            app.state.settings = settings
            app.state.stream_limits = StreamLimits(settings.QUERY_STREAMS_PER_USER)
            app.state.database = reading
            freeze_startup_heap()
            yield

    doctor = _PoolDoctor()
    app = FastAPI(
        title="TODO query API", version="1.0.0", lifespan=lifespan, telemetry=FASTAPI_TELEMETRY_OFF
    )
    # psycopg_pool's PoolTimeout is an OperationalError too.
    install_error_handlers(
        app, unavailable=(psycopg.OperationalError,), on_unavailable=doctor.on_unavailable
    )
    install_http_metrics(app, *metrics.QUERY_API)
    app.include_router(router)
    app.include_router(stream_router)

    def read_db_reachable() -> bool:
        database: DatabaseSettings = app.state.database
        with psycopg.connect(database.conninfo, connect_timeout=2) as conn:
            conn.execute("SELECT 1 FROM tasks LIMIT 0")
        return True

    app.include_router(health_router(read_db_reachable))
    install_openapi(app)
    return app
