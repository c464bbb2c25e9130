"""Read-your-writes across the whole pipeline: command API -> store -> relay -> Kafka -> projector
-> read tables -> query API. With X-Min-Position a query sees the command's effect, every time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from fastapi.testclient import TestClient

from query_api.bootstrap import create_app
from query_api.settings import QueryApiSettings
from runtime.settings import DatabaseSettings, KafkaSettings
from tests.support.read_side import running_projector
from tests.support.system import auth, command_client, register_and_login, running_relay, store_for

pytestmark = pytest.mark.integration


@contextmanager
def query_client(db: DatabaseSettings, timeout: float = 5.0) -> Iterator[TestClient]:
    settings = QueryApiSettings(READ_YOUR_WRITES_TIMEOUT_SECONDS=timeout)
    with TestClient(create_app(db=db, settings=settings)) as client:
        yield client


@contextmanager
def whole_pipeline(
    db: DatabaseSettings, kafka: KafkaSettings, group: str, timeout: float = 5.0
) -> Iterator[tuple[TestClient, TestClient]]:
    with (
        store_for(db) as store,
        command_client(store, db) as commands,
        running_relay(store, db, kafka),
        running_projector(db, kafka, group=group),
        query_client(db, timeout) as queries,
    ):
        yield commands, queries


def position(response: object) -> str:
    value = response.headers["X-Event-Position"]  # type: ignore[attr-defined]
    assert value.isdigit()
    return str(value)


def test_a_command_followed_by_a_query_with_x_min_position_sees_its_own_write_every_time(
    read_db: DatabaseSettings, kafka_settings: KafkaSettings
) -> None:
    with whole_pipeline(read_db, kafka_settings, "projector-ryw") as (commands, queries):
        token = register_and_login(commands, "ada@example.com")
        for i in range(25):
            created = commands.post("/tasks", json={"title": f"task {i}"}, headers=auth(token))
            assert created.status_code == 201
            task_id = created.json()["id"]
            wait = {**auth(token), "X-Min-Position": position(created)}
            seen = queries.get(f"/tasks/{task_id}", headers=wait)
            assert seen.status_code == 200, seen.text
            assert "X-Stale" not in seen.headers
            assert seen.json()["title"] == f"task {i}"

            done = commands.patch(f"/tasks/{task_id}", json={"done": True}, headers=auth(token))
            wait = {**auth(token), "X-Min-Position": position(done)}
            listed = queries.get("/tasks?done=true&limit=1", headers=wait)
            assert listed.json()["items"][0]["id"] == task_id
            assert listed.json()["items"][0]["version"] == 2

            if i % 5 == 4:
                deleted = commands.delete(f"/tasks/{task_id}", headers=auth(token))
                wait = {**auth(token), "X-Min-Position": position(deleted)}
                assert queries.get(f"/tasks/{task_id}", headers=wait).status_code == 404

        me = queries.get("/me", headers=auth(token)).json()
        assert me["stats"] == {"total": 20, "done": 20, "undone": 0}


def test_waiting_for_a_position_answers_as_soon_as_it_is_applied_not_at_the_bound(
    read_db: DatabaseSettings, kafka_settings: KafkaSettings
) -> None:
    with whole_pipeline(read_db, kafka_settings, "projector-ryw-fast") as (commands, queries):
        token = register_and_login(commands, "grace@example.com")
        created = commands.post("/tasks", json={"title": "quick"}, headers=auth(token))
        started = time.monotonic()
        seen = queries.get("/tasks", headers={**auth(token), "X-Min-Position": position(created)})
        elapsed = time.monotonic() - started
    assert [t["title"] for t in seen.json()["items"]] == ["quick"]
    assert elapsed < 2.5  # the bound is 5 s here: the answer came from the notification


def test_a_position_that_is_never_applied_answers_after_the_bound_marked_stale(
    read_db: DatabaseSettings,
) -> None:
    # No projector running: the position cannot be reached.
    from uuid import uuid4

    from http_api.auth import issue_token
    from runtime.settings import auth_settings

    token, _ = issue_token(uuid4(), auth_settings())
    with query_client(read_db, timeout=0.3) as queries:
        started = time.monotonic()
        response = queries.get("/tasks", headers={**auth(token), "X-Min-Position": "1000000"})
        elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert response.headers["X-Stale"] == "true"
    assert response.json() == {"items": [], "next_cursor": None}
    assert 0.3 <= elapsed < 2


def test_registering_then_reading_me_with_x_min_position_is_not_stale(
    read_db: DatabaseSettings, kafka_settings: KafkaSettings
) -> None:
    pipeline = whole_pipeline(read_db, kafka_settings, "projector-ryw-me", timeout=1.0)
    with pipeline as (commands, queries):
        registered = commands.post(
            "/auth/register", json={"email": "linus@example.com", "password": "correct horse"}
        )
        login = commands.post(
            "/auth/login", json={"email": "linus@example.com", "password": "correct horse"}
        )
        token = login.json()["access_token"]
        me = queries.get("/me", headers={**auth(token), "X-Min-Position": position(registered)})
    assert me.status_code == 200
    assert "X-Stale" not in me.headers
