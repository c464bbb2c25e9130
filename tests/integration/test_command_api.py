"""Every status code of the command API, against the real event store in PostgreSQL."""

from __future__ import annotations

import time
from uuid import uuid4

import jwt
import psycopg
import pytest
from fastapi.testclient import TestClient
from psycopg import sql

from command_api.bootstrap import bootstrap, build_store
from command_api.settings import CommandApiSettings
from command_api.throttle import InMemoryHitCounters
from runtime.settings import DatabaseSettings, auth_settings
from tests.support.system import auth, client, register_and_login, store, token

__all__ = ["client", "store", "token"]  # the fixtures


def create(client: TestClient, token: str, title: str = "a task") -> dict[str, object]:
    response = client.post("/tasks", json={"title": title}, headers=auth(token))
    assert response.status_code == 201, response.text
    return dict(response.json())


# --- auth -------------------------------------------------------------------------------------


def test_register_answers_201_with_id_email_and_created_at_and_a_position(
    client: TestClient,
) -> None:
    response = client.post(
        "/auth/register", json={"email": "Ada@Example.com", "password": "longenough"}
    )
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "email", "created_at"}
    assert body["email"] == "ada@example.com"
    assert int(response.headers["X-Event-Position"]) >= 1


def test_registering_a_taken_email_answers_409_whatever_its_case(client: TestClient) -> None:
    client.post("/auth/register", json={"email": "ada@example.com", "password": "longenough"})
    response = client.post(
        "/auth/register", json={"email": "ADA@example.com", "password": "other-pass"}
    )
    assert response.status_code == 409
    assert response.json() == {"detail": "email already registered"}


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-email", "password": "longenough"},
        {"email": "ada@example.com", "password": "short"},
        {"email": "ada@example.com"},
        {},
    ],
)
def test_register_refuses_malformed_input_with_422(
    client: TestClient, body: dict[str, str]
) -> None:
    response = client.post("/auth/register", json=body)
    assert response.status_code == 422
    assert response.json()["detail"]


def test_a_body_that_is_not_json_answers_422_not_500(client: TestClient) -> None:
    response = client.post(
        "/auth/register", content=b"{oops", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


def test_login_works_right_after_register_and_returns_a_bearer_token(client: TestClient) -> None:
    client.post("/auth/register", json={"email": "ada@example.com", "password": "longenough"})
    response = client.post(
        "/auth/login", json={"email": "ada@example.com", "password": "longenough"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] > 0
    claims = jwt.decode(
        body["access_token"], auth_settings().JWT_SECRET.get_secret_value(), algorithms=["HS256"]
    )
    assert {"sub", "iat", "exp"} <= set(claims)


@pytest.mark.parametrize(
    "email,password", [("ada@example.com", "wrong-password"), ("nobody@example.com", "longenough")]
)
def test_login_with_a_wrong_password_or_unknown_email_answers_401(
    client: TestClient, email: str, password: str
) -> None:
    client.post("/auth/register", json={"email": "ada@example.com", "password": "longenough"})
    response = client.post("/auth/login", json={"email": email, "password": password})
    assert response.status_code == 401
    assert response.json() == {"detail": "invalid email or password"}


# --- tokens -----------------------------------------------------------------------------------


def expired_token() -> str:
    now = int(time.time())
    claims = {"sub": str(uuid4()), "iat": now - 120, "exp": now - 60}
    return jwt.encode(claims, auth_settings().JWT_SECRET.get_secret_value(), algorithm="HS256")


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer not-a-jwt"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": f"Bearer {jwt.encode({'sub': 'x'}, 'another-secret-' * 3)}"},
    ],
)
def test_missing_or_invalid_tokens_answer_401(client: TestClient, headers: dict[str, str]) -> None:
    response = client.post("/tasks", json={"title": "x"}, headers=headers)
    assert response.status_code == 401
    assert "detail" in response.json()


def test_an_expired_token_answers_401(client: TestClient) -> None:
    response = client.post("/tasks", json={"title": "x"}, headers=auth(expired_token()))
    assert response.status_code == 401
    assert response.json() == {"detail": "token expired"}


# --- tasks ------------------------------------------------------------------------------------


def test_creating_a_task_answers_201_with_its_state_and_position(
    client: TestClient, token: str
) -> None:
    response = client.post("/tasks", json={"title": "  buy milk "}, headers=auth(token))
    assert response.status_code == 201
    body = response.json()
    assert set(body) == {"id", "title", "done", "created_at", "done_at", "version"}
    assert (body["title"], body["done"], body["done_at"], body["version"]) == (
        "buy milk",
        False,
        None,
        1,
    )
    assert int(response.headers["X-Event-Position"]) >= 1


@pytest.mark.parametrize("title", ["", "   ", "x" * 501])
def test_titles_outside_1_to_500_characters_answer_422(
    client: TestClient, token: str, title: str
) -> None:
    assert client.post("/tasks", json={"title": title}, headers=auth(token)).status_code == 422


def test_patch_completes_and_reopens_a_task_setting_and_clearing_done_at(
    client: TestClient, token: str
) -> None:
    task = create(client, token)
    done = client.patch(f"/tasks/{task['id']}", json={"done": True}, headers=auth(token))
    assert done.status_code == 200
    assert done.json()["done"] is True and done.json()["done_at"] is not None
    reopened = client.patch(f"/tasks/{task['id']}", json={"done": False}, headers=auth(token))
    assert reopened.json()["done"] is False and reopened.json()["done_at"] is None
    assert reopened.json()["version"] == 3
    assert int(reopened.headers["X-Event-Position"]) > int(done.headers["X-Event-Position"])


def test_patch_renames_and_completes_in_one_request(client: TestClient, token: str) -> None:
    task = create(client, token)
    response = client.patch(
        f"/tasks/{task['id']}", json={"title": " renamed ", "done": True}, headers=auth(token)
    )
    assert response.status_code == 200
    assert (response.json()["title"], response.json()["done"], response.json()["version"]) == (
        "renamed",
        True,
        3,
    )


def test_patch_with_nothing_to_change_answers_422(client: TestClient, token: str) -> None:
    task = create(client, token)
    assert client.patch(f"/tasks/{task['id']}", json={}, headers=auth(token)).status_code == 422


def test_patch_with_a_matching_if_match_succeeds_and_a_stale_one_answers_409(
    client: TestClient, token: str
) -> None:
    task = create(client, token)
    ok = client.patch(
        f"/tasks/{task['id']}", json={"title": "v2"}, headers={**auth(token), "If-Match": '"1"'}
    )
    assert ok.status_code == 200
    assert ok.headers["ETag"] == '"2"'
    stale = client.patch(
        f"/tasks/{task['id']}", json={"title": "v3"}, headers={**auth(token), "If-Match": "1"}
    )
    assert stale.status_code == 409
    assert "expected version 1" in stale.json()["detail"]


def test_a_malformed_if_match_answers_400(client: TestClient, token: str) -> None:
    task = create(client, token)
    response = client.patch(
        f"/tasks/{task['id']}", json={"title": "x"}, headers={**auth(token), "If-Match": "abc"}
    )
    assert response.status_code == 400


def test_delete_answers_204_and_the_task_is_then_gone(client: TestClient, token: str) -> None:
    task = create(client, token)
    deleted = client.delete(f"/tasks/{task['id']}", headers=auth(token))
    assert deleted.status_code == 204
    assert int(deleted.headers["X-Event-Position"]) >= 1
    assert (
        client.patch(f"/tasks/{task['id']}", json={"done": True}, headers=auth(token)).status_code
        == 404
    )
    assert client.delete(f"/tasks/{task['id']}", headers=auth(token)).status_code == 404


def test_another_users_task_answers_404_for_every_command(client: TestClient, token: str) -> None:
    task = create(client, token)
    intruder = register_and_login(client, "intruder@example.com")
    path = f"/tasks/{task['id']}"
    assert client.patch(path, json={"title": "mine"}, headers=auth(intruder)).status_code == 404
    assert client.patch(path, json={"done": True}, headers=auth(intruder)).status_code == 404
    assert client.delete(path, headers=auth(intruder)).status_code == 404
    # and the owner's task is untouched
    check = client.patch(path, json={"title": "still mine"}, headers=auth(token))
    assert check.json()["version"] == 2


def test_an_unknown_task_answers_404_and_a_malformed_id_answers_422(
    client: TestClient, token: str
) -> None:
    assert (
        client.patch(f"/tasks/{uuid4()}", json={"done": True}, headers=auth(token)).status_code
        == 404
    )
    assert client.delete(f"/tasks/{uuid4()}", headers=auth(token)).status_code == 404
    assert (
        client.patch("/tasks/not-a-uuid", json={"done": True}, headers=auth(token)).status_code
        == 422
    )


def test_health_and_ready_answer_200_when_the_store_is_reachable(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").status_code == 200


def test_ready_answers_503_when_the_store_is_unreachable(db_settings: DatabaseSettings) -> None:
    store = build_store(db_settings, CommandApiSettings())  # the command API's own recorder
    try:
        with TestClient(bootstrap(store, auth_counters=InMemoryHitCounters())) as client:
            assert client.get("/ready").status_code == 200
            refuse_connections(db_settings)

            assert client.get("/health").status_code == 200
            assert client.get("/ready").status_code == 503
    finally:
        store.close()


def refuse_connections(db: DatabaseSettings) -> None:
    """The store's database goes away: its connections are cut and new ones refused."""
    admin = db.model_copy(update={"POSTGRES_DB": "postgres"})
    with psycopg.connect(admin.conninfo, autocommit=True) as conn:
        name = sql.Identifier(db.POSTGRES_DB)
        conn.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(name))
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (db.POSTGRES_DB,),
        )
