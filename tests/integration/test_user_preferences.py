"""Account preferences: registration with the browser's timezone, PATCH /me (command API) recording
them in the store, and GET /me (query API) answering them through the whole pipeline."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from event_store.application import TodoStore
from runtime.settings import DatabaseSettings, KafkaSettings
from tests.integration.test_query_read_your_writes import whole_pipeline
from tests.support.system import auth, client, register_and_login, store

pytestmark = pytest.mark.integration
__all__ = ["client", "store"]  # the fixtures


def test_a_new_user_has_utc_and_the_digest_on(client: TestClient, store: TodoStore) -> None:
    token = register_and_login(client, "ada@example.com")
    user = store.find_user_by_email("ada@example.com")
    assert user is not None and (user.timezone, user.digest_enabled) == ("UTC", True)
    answer = client.patch("/me", json={"digest_enabled": True}, headers=auth(token))
    assert answer.status_code == 200
    assert "X-Event-Position" not in answer.headers  # nothing changed, nothing recorded


def test_registration_records_the_browsers_timezone(client: TestClient, store: TodoStore) -> None:
    answer = client.post(
        "/auth/register",
        json={"email": "kiran@example.com", "password": "long enough", "timezone": "Asia/Kolkata"},
    )
    assert answer.status_code == 201, answer.text
    user = store.find_user_by_email("kiran@example.com")
    assert user is not None and user.timezone == "Asia/Kolkata"


@pytest.mark.parametrize("timezone", ["Mars/Olympus_Mons", "localtime", "", "../etc/passwd", 5])
def test_registration_with_a_timezone_not_in_the_tz_database_answers_422(
    client: TestClient, timezone: object
) -> None:
    body = {"email": "x@example.com", "password": "long enough", "timezone": timezone}
    answer = client.post("/auth/register", json=body)
    assert answer.status_code == 422
    assert answer.json()["detail"][0]["loc"] == ["body", "timezone"]


def test_patch_me_records_the_owners_new_preferences_in_the_store(
    client: TestClient, store: TodoStore
) -> None:
    token = register_and_login(client, "ada@example.com")
    answer = client.patch(
        "/me",
        json={"timezone": "America/Los_Angeles", "digest_enabled": False},
        headers=auth(token),
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["timezone"] == "America/Los_Angeles"
    assert answer.json()["digest_enabled"] is False
    assert int(answer.headers["X-Event-Position"]) >= 1
    user = store.find_user_by_email("ada@example.com")
    assert user is not None
    assert (user.timezone, user.digest_enabled) == ("America/Los_Angeles", False)

    other = register_and_login(client, "grace@example.com")
    client.patch("/me", json={"timezone": "Asia/Kathmandu"}, headers=auth(other))
    user = store.find_user_by_email("ada@example.com")
    assert user is not None and user.timezone == "America/Los_Angeles"  # only the owner's changed


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"timezone": None},
        {"digest_enabled": None},
        {"timezone": "Nowhere/Special"},
        {"timezone": "utc"},  # names are case-sensitive in the tz database
        {"digest_enabled": "maybe"},
        {"timezone": "UTC", "email": "other@example.com"},
    ],
)
def test_patch_me_with_bad_input_answers_422_and_records_nothing(
    client: TestClient, store: TodoStore, body: dict[str, object]
) -> None:
    token = register_and_login(client, "ada@example.com")
    head = store.head_position()
    answer = client.patch("/me", json=body, headers=auth(token))
    assert answer.status_code == 422
    assert isinstance(answer.json()["detail"], list)
    assert store.head_position() == head


def test_patch_me_without_a_valid_token_answers_401(client: TestClient) -> None:
    assert client.patch("/me", json={"timezone": "UTC"}).status_code == 401
    bad = client.patch("/me", json={"timezone": "UTC"}, headers=auth("not-a-token"))
    assert bad.status_code == 401
    assert bad.json() == {"detail": "invalid token"}


def test_get_me_on_the_query_api_answers_the_preferences_patch_me_recorded(
    read_db: DatabaseSettings, kafka_settings: KafkaSettings
) -> None:
    with whole_pipeline(read_db, kafka_settings, "projector-prefs") as (commands, queries):
        token = register_and_login(commands, "ada@example.com")
        changed = commands.patch(
            "/me", json={"timezone": "Asia/Kathmandu", "digest_enabled": False}, headers=auth(token)
        )
        wait = {**auth(token), "X-Min-Position": changed.headers["X-Event-Position"]}
        me = queries.get("/me", headers=wait)
        assert me.status_code == 200 and "X-Stale" not in me.headers
        assert (me.json()["timezone"], me.json()["digest_enabled"]) == ("Asia/Kathmandu", False)
