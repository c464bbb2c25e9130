"""Composition root of the command API: builds the store and the FastAPI app around it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from command_api.errors import install_domain_error_handlers
from command_api.routes import auth, tasks
from common.settings import CommandApiSettings, DatabaseSettings, database_settings
from common.web import health_router, install_error_handlers
from event_store.application import TodoStore, store_env


def build_store() -> TodoStore:
    return TodoStore(
        env=store_env(database_settings()), batch_max=CommandApiSettings().COMMAND_BATCH_MAX
    )


def create_app(store: TodoStore | None = None, *, db: DatabaseSettings | None = None) -> FastAPI:
    """`store` (and `db`, the database the auth throttle uses: the store's) are injected by tests;
    by default both are built from settings at startup."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = store is None
        app.state.database = db or database_settings()
        app.state.store = store or build_store()
        try:
            yield
        finally:
            if owned:
                app.state.store.close()

    app = FastAPI(title="TODO command API", version="1.0.0", lifespan=lifespan)
    install_error_handlers(app)
    install_domain_error_handlers(app)
    app.include_router(auth.router)
    app.include_router(tasks.router)

    def store_reachable() -> bool:
        with app.state.store.recorder.datastore.get_connection() as conn:
            conn.execute("select 1")
        return True

    app.include_router(health_router(store_reachable))
    return app
