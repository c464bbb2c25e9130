"""One-click unsubscribe for real: the command API against the real store, and the whole digest
flow (store -> relay -> Kafka -> mailer -> a real SMTP server) with the links in the email."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlsplit
from uuid import uuid4

import pytest
from fastapi.testclient import TestClient

from contracts.unsubscribe import issue_unsubscribe_token
from event_store.application import TodoStore
from http_api.auth import issue_token
from runtime.settings import DatabaseSettings, auth_settings
from tests.support.digest import (
    DigestSystem,
    ReadUser,
    Task,
    mailer_settings,
    running_mailer,
)
from tests.support.smtp import SmtpServer
from tests.support.system import auth, client, command_client, store

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.support.mail_fixtures"]  # smtp, system
__all__ = ["client", "store"]  # the fixtures
DAY = date(2026, 11, 23)


def registered(store: TodoStore, email: str = "ada@example.com") -> tuple[str, str]:
    """(user id, unsubscribe token) of a new user."""
    user = store.register_user(email, "hash").aggregate
    return str(user.id), issue_unsubscribe_token(user.id, datetime.now(UTC), auth_settings())


def digest_enabled(store: TodoStore, user_id: str) -> bool:
    user = store.find_user_by_email("ada@example.com")
    assert user is not None and str(user.id) == user_id
    return user.digest_enabled


def test_get_shows_a_confirmation_page_and_never_unsubscribes(
    client: TestClient, store: TodoStore
) -> None:
    user_id, token = registered(store)
    head = store.head_position()
    page = client.get("/unsubscribe", params={"token": token})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<form method="post"' in page.text and "<button" in page.text
    assert store.head_position() == head and digest_enabled(store, user_id)


def test_post_turns_the_digest_off_without_a_login_and_is_idempotent(
    client: TestClient, store: TodoStore
) -> None:
    user_id, token = registered(store)
    first = client.post(
        "/unsubscribe", params={"token": token}, data={"List-Unsubscribe": "One-Click"}
    )
    assert first.status_code == 200, first.text
    assert first.json()["digest_enabled"] is False
    assert int(first.headers["X-Event-Position"]) > 0
    assert not digest_enabled(store, user_id)
    again = client.post("/unsubscribe", params={"token": token})
    assert again.status_code == 200 and "X-Event-Position" not in again.headers


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_a_bad_expired_or_wrong_purpose_token_answers_403_json_and_changes_nothing(
    client: TestClient, store: TodoStore, method: str
) -> None:
    user_id, _ = registered(store)
    user = store.find_user_by_email("ada@example.com")
    assert user is not None
    settings = auth_settings()
    expired = issue_unsubscribe_token(user.id, datetime.now(UTC) - timedelta(days=91), settings)
    login_token, _ = issue_token(user.id, settings)
    head = store.head_position()
    for token, detail in [
        ("not-a-token", "invalid unsubscribe link"),
        (expired, "unsubscribe link expired"),
        (login_token, "invalid unsubscribe link"),
    ]:
        answer = client.request(method, "/unsubscribe", params={"token": token})
        assert answer.status_code == 403
        assert answer.json() == {"detail": detail}
    assert client.request(method, "/unsubscribe").status_code == 422
    assert store.head_position() == head and digest_enabled(store, user_id)


def test_an_unsubscribe_token_is_no_login_and_an_unknown_users_token_answers_404(
    client: TestClient, store: TodoStore
) -> None:
    _, token = registered(store)
    assert client.post("/tasks", json={"title": "x"}, headers=auth(token)).status_code == 401
    stranger = issue_unsubscribe_token(uuid4(), datetime.now(UTC), auth_settings())
    answer = client.post("/unsubscribe", params={"token": stranger})
    assert answer.status_code == 404 and answer.json() == {"detail": "user not found"}


def test_the_email_carries_working_unsubscribe_links_and_no_digest_goes_to_an_unsubscribed_user(
    system: DigestSystem, smtp: SmtpServer, db_settings: DatabaseSettings
) -> None:
    store = system.store
    ada = store.register_user("ada@example.com", "hash").aggregate
    bob = store.register_user("bob@example.com", "hash").aggregate
    system.add_users(
        [
            ReadUser("ada@example.com", [Task("file taxes")], id=ada.id),
            ReadUser("bob@example.com", [Task("book flights")], id=bob.id),
        ]
    )
    system.run_batch(DAY)  # both digests recorded...
    system.digest_events(2)
    store.change_preferences(ada.id, digest_enabled=False)  # ...then Ada unsubscribes

    settings = mailer_settings(smtp).model_copy(update={"PUBLIC_BASE_URL": "https://todo.test"})
    with running_mailer(system.db, system.kafka, settings):
        smtp.wait_for(1)
        received = smtp.settle(quiet=2.0)

    assert [r.rcpt_tos for r in received] == [("bob@example.com",)], "none for Ada"
    email = received[0].message
    assert email["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https, mailto = (p.strip().strip("<>") for p in email["List-Unsubscribe"].split(","))
    assert mailto.startswith("mailto:")
    assert https in received[0].part("plain") and https in received[0].part("html")
    link = urlsplit(https)
    assert (link.scheme, link.netloc, link.path) == ("https", "todo.test", "/api/unsubscribe")

    # The one-click POST a mail client sends, at that URL (behind the gateway: /api stripped).
    with command_client(store, db_settings) as client:
        answer = client.post(f"/unsubscribe?{link.query}", data={"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 200, answer.text
    refreshed = store.get_user(bob.id)
    assert refreshed is not None and refreshed.digest_enabled is False
