"""Composition root of the command API: builds the store and the FastAPI app around it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from fastapi import FastAPI, Request

from command_api.errors import install_domain_error_handlers
from command_api.fast_create import FastCreateTaskRoute
from command_api.routes import auth, me, tasks, unsubscribe
from command_api.throttle import HitCounters
from common import metrics
from common.auth import TokenVerifier
from common.http_metrics import install_http_metrics
from common.load_shedding import InFlightLimit
from common.openapi import install_openapi
from common.settings import (
    CommandApiSettings,
    DatabaseSettings,
    auth_settings,
    database_settings,
)
from common.web import health_router, install_error_handlers
from event_store import command_recorder
from event_store.application import TodoStore, store_env
from event_store.group_commit import CommandTimeoutError
from event_store.store_errors import STORE_UNAVAILABLE


def command_store_env(db: DatabaseSettings) -> dict[str, str]:
    """The store's settings, with a recorder that fails fast when PostgreSQL is unreachable."""
    return {
        **store_env(db),
        "APPLICATION_RECORDER_TOPIC": command_recorder.TOPIC,
    }


def build_store() -> TodoStore:
    settings = CommandApiSettings()
    return TodoStore(
        env=command_store_env(database_settings()),
        batch_max=settings.COMMAND_BATCH_MAX,
        command_timeout=settings.COMMAND_TIMEOUT_SECONDS,
    )


async def _recover_connections(request: Request, exc: Exception) -> None:
    # In the background: the 503 goes out now, the pool heals for the next requests.
    store: TodoStore = request.app.state.store
    asyncio.get_running_loop().run_in_executor(None, store.discard_broken_connections)


def create_app(
    store: TodoStore | None = None,
    *,
    db: DatabaseSettings | None = None,
    auth_counters: HitCounters | None = None,
) -> FastAPI:
    """`store`, `db` (the database the auth throttle uses: the store's) and `auth_counters` (the
    throttle's state, else in that database) are injected by tests; by default all are built
    from settings at startup."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = store is None
        app.state.database = db or database_settings()
        app.state.auth_counters = auth_counters
        app.state.store = store or build_store()
        app.state.tokens = TokenVerifier(auth_settings)
        try:
            yield
        finally:
            if owned:
                app.state.store.close()

    app = FastAPI(title="TODO command API", version="1.0.0", lifespan=lifespan)
    install_error_handlers(
        app,
        unavailable=(*STORE_UNAVAILABLE, psycopg.OperationalError, CommandTimeoutError),
        on_unavailable=_recover_connections,
    )
    install_domain_error_handlers(app)
    # Inside the HTTP metrics (a shed request is observed as a 503), outside everything else.
    app.add_middleware(InFlightLimit, limit=CommandApiSettings().COMMAND_API_MAX_IN_FLIGHT)
    install_http_metrics(app, *metrics.COMMAND_API)
    app.router.routes.append(FastCreateTaskRoute(fallback=app.router))  # ahead of tasks.router
    app.include_router(auth.router)
    app.include_router(tasks.router)
    app.include_router(me.router)
    app.include_router(unsubscribe.router)

    def store_reachable() -> bool:
        with app.state.store.recorder.datastore.get_connection() as conn:
            conn.execute("select 1")
        return True

    app.include_router(health_router(store_reachable))
    install_openapi(app)
    return app
