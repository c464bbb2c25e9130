"""The command API's composition root: the FastAPI app and everything it runs on, built from
settings and the adapters passed in. `python -m command_api` calls it with none (all from the
environment, the store on PostgreSQL); unit tests pass a store on eventsourcing's in-memory
backend and in-memory throttle counters (tests/support/command_app.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import psycopg
from fastapi import FastAPI, Request

from command_api.errors import install_domain_error_handlers
from command_api.fast_create import FastCreateTaskRoute
from command_api.routes import auth, me, tasks, unsubscribe
from command_api.settings import CommandApiSettings
from command_api.throttle import HitCounters
from event_store import command_recorder
from event_store.application import TodoStore, store_env
from event_store.group_commit import CommandTimeoutError
from event_store.store_errors import STORE_UNAVAILABLE
from http_api.auth import TokenVerifier
from http_api.errors import health_router, install_error_handlers
from http_api.load_shedding import InFlightLimit
from http_api.metrics import FASTAPI_TELEMETRY_OFF, install_http_metrics
from http_api.openapi import install_openapi
from runtime import metrics
from runtime.process import freeze_startup_heap
from runtime.settings import DatabaseSettings, auth_settings, database_settings


def command_store_env(db: DatabaseSettings) -> dict[str, str]:
    """The store's settings, with a recorder that fails fast when PostgreSQL is unreachable."""
    return {
        **store_env(db),
        "APPLICATION_RECORDER_TOPIC": command_recorder.TOPIC,
    }


def build_store(db: DatabaseSettings, settings: CommandApiSettings) -> TodoStore:
    return TodoStore(
        env=command_store_env(db),
        batch_max=settings.COMMAND_BATCH_MAX,
        command_timeout=settings.COMMAND_TIMEOUT_SECONDS,
    )


async def _recover_connections(request: Request, exc: Exception) -> None:
    # In the background: the 503 goes out now, the pool heals for the next requests.
    store: TodoStore = request.app.state.store
    asyncio.get_running_loop().run_in_executor(None, store.discard_broken_connections)


def bootstrap(
    store: TodoStore | None = None,
    *,
    db: DatabaseSettings | None = None,
    auth_counters: HitCounters | None = None,
    settings: CommandApiSettings | None = None,
) -> FastAPI:
    """The command API on `settings` (else read from the environment). The adapters passed in
    are used as given and stay the caller's to close: `store`, `db` (the database of the store
    and of the auth throttle's counters) and `auth_counters` (the throttle's state). Those not
    passed in are built from settings when the app starts (so that building the app, e.g. for
    its OpenAPI spec, connects to nothing) and closed when it stops."""
    settings = settings or CommandApiSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        database = db or database_settings()
        app.state.database = database
        app.state.auth_counters = auth_counters
        app.state.store = store or build_store(database, settings)
        app.state.tokens = TokenVerifier(auth_settings)
        freeze_startup_heap()
        try:
            yield
        finally:
            if store is None:
                app.state.store.close()

    app = FastAPI(
        title="TODO command API",
        version="1.0.0",
        lifespan=lifespan,
        telemetry=FASTAPI_TELEMETRY_OFF,
    )
    install_error_handlers(
        app,
        unavailable=(*STORE_UNAVAILABLE, psycopg.OperationalError, CommandTimeoutError),
        on_unavailable=_recover_connections,
    )
    install_domain_error_handlers(app)
    # Inside the HTTP metrics (a shed request is observed as a 503), outside everything else.
    app.add_middleware(InFlightLimit, limit=settings.COMMAND_API_MAX_IN_FLIGHT)
    install_http_metrics(app, *metrics.COMMAND_API)
    app.router.routes.append(FastCreateTaskRoute(fallback=app.router))  # ahead of tasks.router
    app.include_router(auth.router)
    app.include_router(tasks.router)
    app.include_router(me.router)
    app.include_router(unsubscribe.router)
    app.include_router(health_router(lambda: bool(app.state.store.check_reachable())))
    install_openapi(app)
    return app
