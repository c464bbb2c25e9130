"""The query API over fake adapters: contract of each endpoint, auth, paging, errors (its
read-your-writes: test_query_read_your_writes.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from fastapi.testclient import TestClient

from contracts.task_schema import TaskPublic
from query_api.cursor import TaskPageCursor, decode_cursor, encode_cursor
from query_api.schemas import MePublic, TaskPage
from runtime.settings import AuthSettings, auth_settings
from tests.support.query_fakes import T0, FakeReadModel, bearer

pytest_plugins = ["tests.support.query_fixtures"]  # reads, waiter, client


def test_listing_tasks_returns_the_users_tasks_newest_first_in_the_documented_shape(
    client: TestClient, reads: FakeReadModel
) -> None:
    user = uuid4()
    older, newer = reads.add_task(user, 1), reads.add_task(user, 2)
    reads.add_task(uuid4(), 3)  # someone else's
    response = client.get("/tasks", headers=bearer(user))
    assert response.status_code == 200
    page = TaskPage.model_validate(response.json())
    assert [str(t.id) for t in page.items] == [newer["id"], older["id"]]
    assert page.next_cursor is None
    assert set(response.json()["items"][0]) == {
        "id", "title", "done", "created_at", "done_at", "version"
    }  # fmt: skip
    assert "X-Stale" not in response.headers


def test_pages_follow_each_other_through_the_cursor_without_gaps_or_repeats(
    client: TestClient, reads: FakeReadModel
) -> None:
    user = uuid4()
    ids = [reads.add_task(user, s)["id"] for s in range(7)]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        body = client.get("/tasks", params=params, headers=bearer(user)).json()
        seen += [t["id"] for t in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(ids))


def test_the_done_filter_returns_only_matching_tasks(
    client: TestClient, reads: FakeReadModel
) -> None:
    user = uuid4()
    done = reads.add_task(user, 1, done=True)
    reads.add_task(user, 2, done=False)
    items = client.get("/tasks?done=true", headers=bearer(user)).json()["items"]
    assert [t["id"] for t in items] == [done["id"]]


@pytest.mark.parametrize("limit", [0, 201, -1, "many"])
def test_a_limit_outside_1_to_200_is_refused_with_422(client: TestClient, limit: object) -> None:
    response = client.get(f"/tasks?limit={limit}", headers=bearer(uuid4()))
    assert response.status_code == 422
    assert "detail" in response.json()


@pytest.mark.parametrize(
    "cursor", ["garbage", "bm90LWEtY3Vyc29y", "12_" + "g" * 32, "1_" + "A" * 32, "²_" + "a" * 32]
)
def test_an_invalid_cursor_is_refused_with_a_422_naming_the_cursor(
    client: TestClient, cursor: str
) -> None:
    response = client.get("/tasks", params={"cursor": cursor}, headers=bearer(uuid4()))
    assert response.status_code == 422
    assert response.json() == {
        "detail": [{"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "value_error"}]
    }


def test_a_single_task_is_returned_to_its_owner_and_is_404_for_anyone_else(
    client: TestClient, reads: FakeReadModel
) -> None:
    owner = uuid4()
    task = reads.add_task(owner, 1)
    mine = client.get(f"/tasks/{task['id']}", headers=bearer(owner))
    assert mine.status_code == 200
    assert TaskPublic.model_validate(mine.json()).id == UUID(str(task["id"]))
    theirs = client.get(f"/tasks/{task['id']}", headers=bearer(uuid4()))
    assert theirs.status_code == 404
    assert theirs.json() == {"detail": "task not found"}


def test_a_malformed_task_id_is_a_422_not_a_500(client: TestClient) -> None:
    assert client.get("/tasks/not-a-uuid", headers=bearer(uuid4())).status_code == 422


def test_me_returns_the_user_with_task_stats(client: TestClient, reads: FakeReadModel) -> None:
    user = uuid4()
    reads.users[user] = {
        "id": str(user),
        "email": "ada@example.com",
        "created_at": T0.isoformat(),
        "timezone": "Asia/Kathmandu",
        "digest_enabled": False,
        "stats": {"total": 3, "done": 1, "undone": 2},
    }
    response = client.get("/me", headers=bearer(user))
    assert response.status_code == 200
    me = MePublic.model_validate(response.json())
    assert (me.email, me.timezone, me.digest_enabled) == (
        "ada@example.com",
        "Asia/Kathmandu",
        False,
    )
    assert (me.stats.total, me.stats.done, me.stats.undone) == (
        3,
        1,
        2,
    )


def test_me_is_404_for_a_user_not_in_the_read_model(client: TestClient) -> None:
    assert client.get("/me", headers=bearer(uuid4())).status_code == 404


@pytest.mark.parametrize("path", ["/tasks", f"/tasks/{uuid4()}", "/me"])
def test_every_query_needs_a_valid_bearer_token(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 401
    bad = client.get(path, headers={"Authorization": "Bearer not.a.jwt"})
    assert bad.status_code == 401
    assert bad.json()["detail"] == "invalid token"
    other_secret = AuthSettings(JWT_SECRET="another-secret-of-at-least-32-characters!")
    assert client.get(path, headers=bearer(uuid4(), other_secret)).status_code == 401


def test_an_expired_token_is_refused(client: TestClient) -> None:
    import jwt

    now = int(datetime.now(UTC).timestamp())
    claims = {"sub": str(uuid4()), "iat": now - 7200, "exp": now - 3600}
    token = jwt.encode(claims, auth_settings().JWT_SECRET.get_secret_value(), algorithm="HS256")
    response = client.get("/me", headers={"Authorization": f"Bearer {token}"})
    assert (response.status_code, response.json()["detail"]) == (401, "token expired")


def test_a_database_failure_is_a_json_503_never_a_500(
    client: TestClient, reads: FakeReadModel
) -> None:
    import psycopg

    reads.fail = psycopg.OperationalError("server closed the connection")
    response = client.get("/tasks", headers=bearer(uuid4()))
    assert response.status_code == 503
    assert response.json() == {"detail": "service temporarily unavailable"}
    assert response.headers["Retry-After"] == "1"


def test_a_bug_is_a_json_500_with_an_error_id_that_is_logged_with_the_traceback(
    client: TestClient, reads: FakeReadModel, caplog: pytest.LogCaptureFixture
) -> None:
    reads.fail = KeyError("a bug")
    response = client.get("/tasks", headers=bearer(uuid4()))
    assert response.status_code == 500
    body = response.json()
    assert set(body) == {"detail", "error_id"} and body["detail"] == "internal error"
    [record] = [r for r in caplog.records if getattr(r, "error_id", None) == body["error_id"]]
    assert record.exc_info is not None and record.exc_info[0] is KeyError


def test_health_answers_without_touching_the_database(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}


def test_cursors_round_trip_and_are_opaque_url_safe_text() -> None:
    when, task = T0 + timedelta(microseconds=123456), uuid4()
    token = encode_cursor(when, task)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert decode_cursor(token) == TaskPageCursor(when, task)


def test_the_openapi_document_describes_the_bodies_and_the_bearer_scheme(
    client: TestClient,
) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    listing = spec["paths"]["/tasks"]["get"]
    assert listing["security"] == [{"HTTPBearer": []}]
    assert listing["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TaskPage"
    }
    assert {p["name"] for p in listing["parameters"]} == {
        "done",
        "limit",
        "cursor",
        "X-Min-Position",
    }
