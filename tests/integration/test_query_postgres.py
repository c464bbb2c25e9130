"""The query API over the real read tables: paging, filters, ownership, stats and readiness."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import psycopg
import pytest
from fastapi.testclient import TestClient

from http_api.auth import issue_token
from query_api.bootstrap import create_app
from query_api.schemas import MePublic, TaskPage
from runtime.settings import DatabaseSettings, auth_settings
from tests.support.system import auth

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


def insert_task(
    conn: psycopg.Connection[object],
    user: UUID,
    created_at: datetime,
    *,
    done: bool = False,
    deleted: bool = False,
    title: str = "t",
) -> UUID:
    task = uuid4()
    conn.execute(
        "INSERT INTO tasks (id, user_id, title, done, created_at, done_at, version, deleted,"
        " position) VALUES (%s, %s, %s, %s, %s, %s, 1, %s, 1)",
        (task, user, title, done, created_at, created_at if done else None, deleted),
    )
    return task


@pytest.fixture
def client(read_db: DatabaseSettings) -> Iterator[TestClient]:
    with TestClient(create_app(db=read_db)) as c:
        yield c


def token_for(user: UUID) -> dict[str, str]:
    return auth(issue_token(user, auth_settings())[0])


def test_paging_walks_every_live_task_once_newest_first_even_with_equal_timestamps(
    read_db: DatabaseSettings, client: TestClient
) -> None:
    user = uuid4()
    with psycopg.connect(read_db.conninfo, autocommit=True) as conn:
        tied = [insert_task(conn, user, T0) for _ in range(5)]
        newer = insert_task(conn, user, T0 + timedelta(seconds=1))
        older = insert_task(conn, user, T0 - timedelta(seconds=1))
        insert_task(conn, user, T0, deleted=True)
        insert_task(conn, uuid4(), T0)
    expected = [newer, *sorted(tied, reverse=True), older]
    seen: list[UUID] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        response = client.get("/tasks", params=params, headers=token_for(user))
        assert response.status_code == 200
        page = TaskPage.model_validate(response.json())
        seen += [t.id for t in page.items]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == expected
    assert pages == 3


def test_the_done_filter_and_the_task_fields_come_from_the_read_tables(
    read_db: DatabaseSettings, client: TestClient
) -> None:
    user = uuid4()
    with psycopg.connect(read_db.conninfo, autocommit=True) as conn:
        done = insert_task(conn, user, T0, done=True, title='quote " and \\ backslash')
        insert_task(conn, user, T0 + timedelta(seconds=1))
    items = client.get("/tasks?done=true", headers=token_for(user)).json()["items"]
    assert items == [
        {
            "id": str(done),
            "title": 'quote " and \\ backslash',
            "done": True,
            "created_at": "2026-03-01T12:00:00.123456+00:00",
            "done_at": "2026-03-01T12:00:00.123456+00:00",
            "version": 1,
        }
    ]
    assert len(client.get("/tasks?done=false", headers=token_for(user)).json()["items"]) == 1


def test_a_task_is_visible_to_its_owner_only_and_a_deleted_task_to_nobody(
    read_db: DatabaseSettings, client: TestClient
) -> None:
    owner = uuid4()
    with psycopg.connect(read_db.conninfo, autocommit=True) as conn:
        task = insert_task(conn, owner, T0)
        gone = insert_task(conn, owner, T0, deleted=True)
    assert client.get(f"/tasks/{task}", headers=token_for(owner)).json()["id"] == str(task)
    assert client.get(f"/tasks/{task}", headers=token_for(uuid4())).status_code == 404
    assert client.get(f"/tasks/{gone}", headers=token_for(owner)).status_code == 404


def test_me_counts_live_tasks_only(read_db: DatabaseSettings, client: TestClient) -> None:
    user = uuid4()
    with psycopg.connect(read_db.conninfo, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (id, email, created_at, version, position)"
            " VALUES (%s, 'ada@example.com', %s, 1, 1)",
            (user, T0),
        )
        for done in (True, True, False):
            insert_task(conn, user, T0, done=done)
        insert_task(conn, user, T0, done=True, deleted=True)
    me = MePublic.model_validate(client.get("/me", headers=token_for(user)).json())
    assert (me.id, me.email, me.created_at) == (user, "ada@example.com", T0)
    assert (me.stats.total, me.stats.done, me.stats.undone) == (3, 2, 1)


def test_ready_reports_whether_the_read_tables_are_reachable(
    read_db: DatabaseSettings, db_settings: DatabaseSettings
) -> None:
    with TestClient(create_app(db=read_db)) as client:
        assert client.get("/ready").status_code == 200
    missing = db_settings.model_copy(update={"POSTGRES_DB": "no_such_database_here"})
    with TestClient(create_app(db=missing)) as client:
        response = client.get("/ready")
        assert (response.status_code, response.json()) == (503, {"status": "unavailable"})
        assert client.get("/tasks", headers=token_for(uuid4())).status_code == 503
