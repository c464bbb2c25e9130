"""Real parts of the system, wired for tests: the store, the command API, the relay, and the whole
write-to-read pipeline."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient

from command_api.bootstrap import bootstrap
from event_store.application import TodoStore, store_env
from event_store.relay import Relay
from event_store.relay_bootstrap import bootstrap as bootstrap_relay
from runtime.settings import DatabaseSettings, HealthSettings, KafkaSettings, RelaySettings
from tests.support.read_side import migrate, running_projector


@contextmanager
def store_for(db: DatabaseSettings) -> Iterator[TodoStore]:
    store = TodoStore(env=store_env(db))
    try:
        yield store
    finally:
        store.close()


@contextmanager
def command_client(store: TodoStore, db: DatabaseSettings) -> Iterator[TestClient]:
    """The command API on `store`; `db` is the store's database, migrated here because the auth
    routes keep their rate limits in it (table auth_throttle)."""
    migrate(db)
    with TestClient(bootstrap(store, db=db)) as client:
        yield client


@contextmanager
def running_relay(
    store: TodoStore, db: DatabaseSettings, kafka: KafkaSettings, **settings: object
) -> Iterator[Relay]:
    """The real relay (as its bootstrap builds it, without a health port) in a background
    thread; stopped (and its producer flushed) on exit."""
    relay_settings = RelaySettings(**{"RELAY_POLL_INTERVAL_SECONDS": 0.2, **settings})  # type: ignore[arg-type]
    no_health_port = HealthSettings(RELAY_HEALTH_PORT=0)
    with bootstrap_relay(db, kafka, relay_settings, no_health_port, store=store) as process:
        thread = threading.Thread(target=process.run, name="relay", daemon=True)
        thread.start()
        try:
            yield process.relay
        finally:
            process.stop()
            thread.join(timeout=30)


@contextmanager
def live_pipeline(db: DatabaseSettings, kafka: KafkaSettings, group: str) -> Iterator[TodoStore]:
    """The store with the relay and a projector (consumer group `group`) running behind it: what
    is written to it reaches the read tables in `db`."""
    with (
        store_for(db) as store,
        running_relay(store, db, kafka),
        running_projector(db, kafka, group=group),
    ):
        yield store


def register_and_login(client: TestClient, email: str, password: str = "correct horse") -> str:
    """Returns a bearer token for a newly registered user."""
    assert (
        client.post("/auth/register", json={"email": email, "password": password}).status_code
        == 201
    )
    response = client.post("/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# Fixtures for a test module to import (and list in its __all__): the store on the test's own
# database, a client of the command API on it, and a token of a user registered through it.


@pytest.fixture
def store(db_settings: DatabaseSettings) -> Iterator[TodoStore]:
    with store_for(db_settings) as store:
        yield store


@pytest.fixture
def client(store: TodoStore, db_settings: DatabaseSettings) -> Iterator[TestClient]:
    with command_client(store, db_settings) as client:
        yield client


@pytest.fixture
def token(client: TestClient) -> str:
    return register_and_login(client, "owner@example.com")
