"""The command API as unit tests run it: built by its real composition root
(command_api.bootstrap), on the real TodoStore over eventsourcing's in-memory (POPO) backend, with
in-memory auth-throttle counters — cosmicpython's `bootstrap_test_app()`. Nothing is faked below
the store's backend, so these tests take the same code path as production down to the recorder."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from command_api.bootstrap import bootstrap
from command_api.throttle import InMemoryHitCounters
from event_store.application import TodoStore
from tests.support.system import register_and_login


@contextmanager
def in_memory_command_api(
    store: TodoStore | None = None, *, raise_server_exceptions: bool = True
) -> Iterator[TestClient]:
    """A client of the command API on `store` (default: a fresh in-memory one, closed after)."""
    owned = store is None
    app_store = TodoStore() if store is None else store  # no persistence module: in memory
    try:
        app = bootstrap(app_store, auth_counters=InMemoryHitCounters())
        with TestClient(app, raise_server_exceptions=raise_server_exceptions) as client:
            yield client
    finally:
        if owned:
            app_store.close()


def store_of(client: TestClient) -> TodoStore:
    """The store the app runs on (as its routes find it)."""
    app = client.app
    assert isinstance(app, FastAPI)
    store = app.state.store
    assert isinstance(store, TodoStore)
    return store


# Fixtures for a test module to import (and list in its __all__): a client of the in-memory
# command API, and a token of a user registered on it.


@pytest.fixture
def client() -> Iterator[TestClient]:
    with in_memory_command_api() as client:
        yield client


@pytest.fixture
def token(client: TestClient) -> str:
    return register_and_login(client, "ada@example.com")
