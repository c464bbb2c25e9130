"""The command API built by its composition root (command_api.bootstrap) on the real store over
eventsourcing's in-memory backend: what its answers promise about the store, checked against the
store itself, without PostgreSQL."""

from __future__ import annotations

from uuid import UUID

from fastapi.testclient import TestClient

from tests.support.command_app import client, store_of
from tests.support.system import auth, register_and_login

__all__ = ["client"]  # the fixture


def test_health_and_ready_answer_200_on_the_in_memory_store(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"status": "ready"}


def test_each_answer_carries_the_position_of_the_event_it_recorded(
    client: TestClient,
) -> None:
    store = store_of(client)
    token = register_and_login(client, "ada@example.com")
    positions = [store.head_position()]
    task = client.post("/tasks", json={"title": "one"}, headers=auth(token))
    positions.append(int(task.headers["X-Event-Position"]))
    assert positions[-1] == store.head_position()
    renamed = client.patch(
        f"/tasks/{task.json()['id']}", json={"title": "two"}, headers=auth(token)
    )
    positions.append(int(renamed.headers["X-Event-Position"]))

    assert positions == sorted(set(positions)), "strictly increasing"
    assert positions[-1] == store.head_position()
    user = store.find_user_by_email("ada@example.com")
    assert user is not None
    assert store.get_task(user.id, UUID(task.json()["id"])).title == "two"


def test_a_preferences_change_that_changes_nothing_records_no_event(
    client: TestClient,
) -> None:
    store = store_of(client)
    token = register_and_login(client, "ada@example.com")
    head = store.head_position()

    response = client.patch("/me", json={"timezone": "UTC"}, headers=auth(token))

    assert response.status_code == 200 and "X-Event-Position" not in response.headers
    assert store.head_position() == head
