"""GET /tasks/{id}/history and GET /activity over the real read tables, filled by the projector's
own SQL (PostgresProjection) from public events, as Kafka would deliver them."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient

from consuming.batch import Delivered
from contracts.events import PublicEvent
from http_api.auth import issue_token
from projector.sink import PostgresProjection
from query_api.bootstrap import create_app
from query_api.schemas import ActivityPage, TaskHistory
from query_api.settings import QueryApiSettings
from runtime.settings import DatabaseSettings, auth_settings
from tests.support.events import History
from tests.support.read_side import snapshot
from tests.support.system import auth

pytestmark = pytest.mark.integration


def project(db: DatabaseSettings, events: Sequence[PublicEvent]) -> None:
    projection = PostgresProjection(db.conninfo, "projector")
    try:
        projection.apply([Delivered(e, "events", 0, e.position) for e in events])
    finally:
        projection.close()


@pytest.fixture
def client(read_db: DatabaseSettings) -> Iterator[TestClient]:
    settings = QueryApiSettings(READ_YOUR_WRITES_TIMEOUT_SECONDS=0.3)
    with TestClient(create_app(db=read_db, settings=settings)) as c:
        yield c


def token_for(user: UUID) -> dict[str, str]:
    return auth(issue_token(user, auth_settings())[0])


def a_task_deleted_and_restored(h: History, user: UUID, task: UUID) -> list[PublicEvent]:
    return [
        *h.user_with_task(user, task, "draft"),
        h.rename(user, task, "final"),
        h.complete(user, task),
        h.delete(user, task),
        h.restore(user, task),
    ]


def test_the_history_lists_every_event_of_the_task_oldest_first_with_what_changed(
    read_db: DatabaseSettings, client: TestClient
) -> None:
    h, user, task = History(), uuid4(), uuid4()
    events = a_task_deleted_and_restored(h, user, task)
    project(read_db, events)

    response = client.get(f"/tasks/{task}/history", headers=token_for(user))

    assert response.status_code == 200, response.text
    assert "X-Stale" not in response.headers
    history = TaskHistory.model_validate(response.json())
    assert [(i.type, i.position, i.version) for i in history.items] == [
        ("task.created", 2, 1),
        ("task.renamed", 3, 2),
        ("task.completed", 4, 3),
        ("task.deleted", 5, 4),
        ("task.restored", 6, 5),
    ]
    assert [i.occurred_at for i in history.items] == [e.occurred_at for e in events[1:]]
    assert {i.task_id for i in history.items} == {task}
    raw = response.json()["items"]
    assert [i["changes"] for i in raw] == [
        {"title": "draft"},
        {"title": "final"},
        {"done_at": history.items[2].occurred_at.isoformat()},
        {},
        {},
    ]


def test_a_deleted_task_has_a_history_for_its_owner_and_nobody_else(
    read_db: DatabaseSettings, client: TestClient
) -> None:
    h, owner, task = History(), uuid4(), uuid4()
    project(read_db, [h.create(owner, task), h.delete(owner, task)])
    path = f"/tasks/{task}/history"

    mine = client.get(path, headers=token_for(owner))
    theirs = client.get(path, headers=token_for(uuid4()))

    assert [i["type"] for i in mine.json()["items"]] == ["task.created", "task.deleted"]
    assert (theirs.status_code, theirs.json()) == (404, {"detail": "task not found"})
    assert client.get(f"/tasks/{uuid4()}/history", headers=token_for(owner)).status_code == 404
    assert client.get("/tasks/not-a-uuid/history", headers=token_for(owner)).status_code == 422
    assert client.get(path).status_code == 401


def test_a_redelivered_batch_records_nothing_twice(read_db: DatabaseSettings) -> None:
    h, user, task = History(), uuid4(), uuid4()
    events = a_task_deleted_and_restored(h, user, task)
    project(read_db, events)
    before = snapshot(read_db)["task_events"]
    project(read_db, events[2:])  # at-least-once: the tail comes again
    project(read_db, events)
    assert snapshot(read_db)["task_events"] == before
    assert len(before) == 5


def test_activity_pages_through_the_users_events_newest_first_with_current_titles(
    read_db: DatabaseSettings, client: TestClient
) -> None:
    h, user, other = History(), uuid4(), uuid4()
    first, second = uuid4(), uuid4()
    project(
        read_db,
        [
            h.create(user, first, "one"),
            h.create(other, uuid4(), "not mine"),
            h.create(user, second, "two"),
            h.complete(user, first),
            h.rename(user, second, "two, renamed"),
            h.delete(user, first),
        ],
    )
    seen: list[tuple[str, int, str]] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        response = client.get("/activity", params=params, headers=token_for(user))
        assert response.status_code == 200, response.text
        page = ActivityPage.model_validate(response.json())
        seen += [(i.type, i.position, i.task_title) for i in page.items]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [
        ("task.deleted", 6, "one"),
        ("task.renamed", 5, "two, renamed"),
        ("task.completed", 4, "one"),
        ("task.created", 3, "two, renamed"),
        ("task.created", 1, "one"),
    ]
    assert pages == 3
    nobody = client.get("/activity", headers=token_for(uuid4()))
    assert nobody.json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    "params",
    [
        {"cursor": "abc"},
        {"cursor": "-1"},
        {"cursor": "1_" + "0" * 32},
        {"limit": 0},
        {"limit": 201},
    ],
)
def test_activity_refuses_a_malformed_cursor_or_limit_with_422(
    client: TestClient, params: dict[str, str | int]
) -> None:
    response = client.get("/activity", params=params, headers=token_for(uuid4()))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][0] == "query"


@pytest.mark.parametrize("read", ["activity", "history"])
def test_both_reads_honour_x_min_position(
    read_db: DatabaseSettings, client: TestClient, read: str
) -> None:
    h, user, task = History(), uuid4(), uuid4()
    project(read_db, [h.create(user, task)])
    path = "/activity" if read == "activity" else f"/tasks/{task}/history"
    reached = client.get(path, headers={**token_for(user), "X-Min-Position": "1"})
    ahead = client.get(path, headers={**token_for(user), "X-Min-Position": "99"})
    bad = client.get(path, headers={**token_for(user), "X-Min-Position": "x1"})
    assert (reached.status_code, reached.headers.get("X-Stale")) == (200, None)
    assert (ahead.status_code, ahead.headers.get("X-Stale")) == (200, "true")
    assert bad.status_code == 400
