"""The command API's error answers (findings 2, 7 and 10 of issue 8), on an in-memory store:
strict If-Match (400), a bug is a 500 with an error id in the log (never a 503), 503 + Retry-After
only when the store is unreachable, an honest 409 when concurrent changes exhaust the retries, and
an OpenAPI spec that declares all of it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import UUID

import httpx
import pytest
from eventsourcing.persistence import IntegrityError, OperationalError
from fastapi.testclient import TestClient

from event_store.application import TodoStore
from event_store.domain.model import Task
from event_store.group_commit import CommandTimeoutError
from tests.support.command_app import in_memory_command_api
from tests.support.system import auth, register_and_login


class ScriptedStore(TodoStore):
    """The real application on eventsourcing's in-memory recorder, with faults to order."""

    def __init__(self) -> None:
        super().__init__()
        self.fail_with: BaseException | None = None
        self.conflicts_left = 0
        self.pool_checks = 0

    async def create_task_async(self, user_id: UUID, title: str) -> Any:
        if self.fail_with is not None:
            raise self.fail_with
        return await super().create_task_async(user_id, title)

    def _commit(self, *aggregates: Any) -> int | None:
        if self.conflicts_left > 0 and any(isinstance(a, Task) for a in aggregates):
            self.conflicts_left -= 1
            for a in aggregates:
                a.collect_events()
            raise IntegrityError("duplicate key value violates unique constraint")
        return super()._commit(*aggregates)

    def discard_broken_connections(self) -> None:
        self.pool_checks += 1


@pytest.fixture
def store() -> Iterator[ScriptedStore]:
    store = ScriptedStore()
    yield store
    store.close()


@pytest.fixture
def client(store: ScriptedStore) -> Iterator[TestClient]:
    # raise_server_exceptions: an exception escaping the app would fail the test right here.
    with in_memory_command_api(store) as c:
        yield c


@pytest.fixture
def token(client: TestClient) -> str:
    return register_and_login(client, "ada@example.com")


def new_task(client: TestClient, token: str) -> str:
    response = client.post("/tasks", json={"title": "a task"}, headers=auth(token))
    assert response.status_code == 201
    return str(response.json()["id"])


# --- If-Match ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [b"\xb2", "\u0663".encode(), b"abc", b"-1", b"+1", b"1.0", b"1_0", b'"1', b"W/1", b"*", b"0x1"],
)
def test_an_if_match_that_is_not_ascii_digits_is_refused_with_400(
    client: TestClient, token: str, value: bytes
) -> None:
    task = new_task(client, token)
    headers: dict[str, str | bytes] = {**auth(token), "If-Match": value}
    response = client.patch(f"/tasks/{task}", json={"title": "x"}, headers=headers)
    assert response.status_code == 400
    assert "If-Match" in response.json()["detail"]


@pytest.mark.parametrize("value", ["1", '"1"', 'W/"1"'])
def test_if_match_takes_the_version_bare_or_as_an_etag(
    client: TestClient, token: str, value: str
) -> None:
    task = new_task(client, token)
    headers = {**auth(token), "If-Match": value}
    assert client.patch(f"/tasks/{task}", json={"done": True}, headers=headers).status_code == 200
    stale = client.patch(f"/tasks/{task}", json={"done": False}, headers=headers)
    assert stale.status_code == 409
    assert stale.json() == {"detail": "expected version 1, current version is 2"}


# --- 500 for bugs, 503 for an unreachable store ---------------------------------------------------


def test_a_bug_answers_500_with_an_error_id_logged_with_its_traceback(
    client: TestClient, token: str, store: ScriptedStore, caplog: pytest.LogCaptureFixture
) -> None:
    store.fail_with = ZeroDivisionError("a bug")
    response = client.post("/tasks", json={"title": "x"}, headers=auth(token))
    assert response.status_code == 500
    body = response.json()
    assert body["detail"] == "internal error" and len(body["error_id"]) == 32
    [record] = [r for r in caplog.records if getattr(r, "error_id", None) == body["error_id"]]
    assert record.exc_info is not None and record.exc_info[0] is ZeroDivisionError
    assert "Retry-After" not in response.headers


@pytest.mark.parametrize(
    "error",
    [
        OperationalError("connection refused"),
        CommandTimeoutError(10, maybe_recorded=False),
    ],
)
def test_an_unreachable_or_unanswering_store_answers_503_with_retry_after(
    client: TestClient, token: str, store: ScriptedStore, error: Exception
) -> None:
    store.fail_with = error
    response = client.post("/tasks", json={"title": "x"}, headers=auth(token))
    assert response.status_code == 503
    assert response.json() == {"detail": "service temporarily unavailable"}
    assert int(response.headers["Retry-After"]) >= 1


def test_a_lost_database_connection_makes_the_pool_check_its_connections(
    client: TestClient, token: str, store: ScriptedStore
) -> None:
    store.fail_with = OperationalError("server closed the connection unexpectedly")
    client.post("/tasks", json={"title": "x"}, headers=auth(token))
    deadline = 50
    while store.pool_checks == 0 and deadline:  # it runs in the background, after the answer
        deadline -= 1
        __import__("time").sleep(0.05)
    assert store.pool_checks == 1


# --- honest 409 ----------------------------------------------------------------------------------


def rename_after_conflicts(
    client: TestClient, token: str, store: ScriptedStore, conflicts: int
) -> httpx.Response:
    """A new task renamed to "mine" while the store answers its next `conflicts` writes with a
    version conflict."""
    task = new_task(client, token)
    store.conflicts_left = conflicts
    response: httpx.Response = client.patch(
        f"/tasks/{task}", json={"title": "mine"}, headers=auth(token)
    )
    return response


def test_a_change_that_keeps_conflicting_answers_an_honest_409_not_expected_version_minus_1(
    client: TestClient, token: str, store: ScriptedStore
) -> None:
    response = rename_after_conflicts(client, token, store, conflicts=100)
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert "changed concurrently" in detail and "-1" not in detail


def test_a_change_that_conflicts_once_without_if_match_is_retried_and_succeeds(
    client: TestClient, token: str, store: ScriptedStore
) -> None:
    response = rename_after_conflicts(client, token, store, conflicts=1)
    assert response.status_code == 200
    assert response.json()["title"] == "mine"


# --- routing errors and the spec ------------------------------------------------------------------


def test_a_method_a_path_does_not_serve_is_405_listing_every_method_it_does(
    client: TestClient, token: str
) -> None:
    response = client.put(f"/tasks/{new_task(client, token)}", json={}, headers=auth(token))
    assert response.status_code == 405
    assert response.headers["Allow"] == "DELETE, PATCH"
    assert response.json() == {"detail": "Method Not Allowed"}


def test_every_operation_declares_its_error_answers(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            declared = set(operation["responses"])
            assert {"500", "503"} <= declared, (method, path)
            if operation.get("security"):
                assert "401" in declared, (method, path)
    patch = spec["paths"]["/tasks/{task_id}"]["patch"]
    assert {"400", "404", "409", "422"} <= set(patch["responses"])
    if_match = next(p for p in patch["parameters"] if p["name"] == "If-Match")
    assert if_match["schema"]["type"] == "string" and "pattern" in if_match["schema"]
    assert "409" in spec["paths"]["/auth/register"]["post"]["responses"]
    assert "401" in spec["paths"]["/auth/login"]["post"]["responses"]
    internal = spec["components"]["schemas"]["InternalError"]
    assert internal["required"] == ["detail", "error_id"]
