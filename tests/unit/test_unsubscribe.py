"""One-click unsubscribe: the token's rules, the headers and footer of the email, and the mailer's
send-time check (a digest of a user who unsubscribed since is not sent)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from urllib.parse import parse_qs, urlsplit
from uuid import UUID, uuid4

import jwt
import pytest

from contracts.unsubscribe import (
    InvalidUnsubscribeTokenError,
    issue_unsubscribe_token,
    verify_unsubscribe_token,
)
from http_api.auth import InvalidTokenError, issue_token, verify_token
from mailer.compose import DigestComposer
from mailer.settings import MailerSettings
from runtime.settings import AuthSettings
from tests.support.mailer_fakes import (
    FakeProcessed,
    FakeSender,
    Harness,
    Log,
    digest,
    email_counts,
    mailer,
    process,
)

AUTH = AuthSettings()
NOW = datetime.now(UTC)


def test_an_unsubscribe_token_names_its_user_and_nothing_else() -> None:
    user = uuid4()
    assert verify_unsubscribe_token(issue_unsubscribe_token(user, NOW, AUTH), AUTH) == user


def test_an_expired_forged_or_login_token_is_not_an_unsubscribe_token() -> None:
    user = uuid4()
    expired = issue_unsubscribe_token(user, NOW - timedelta(days=91), AUTH)
    with pytest.raises(InvalidUnsubscribeTokenError, match="expired"):
        verify_unsubscribe_token(expired, AUTH)
    other_secret = AuthSettings(JWT_SECRET="another secret, as long as HS256 keys should be")
    forged = issue_unsubscribe_token(user, NOW, other_secret)
    login, _ = issue_token(user, AUTH)
    unsigned = jwt.encode({"sub": str(user), "aud": "todo:unsubscribe"}, None, algorithm="none")
    for token in (forged, login, unsigned, "garbage"):
        with pytest.raises(InvalidUnsubscribeTokenError, match="invalid"):
            verify_unsubscribe_token(token, AUTH)


def test_an_unsubscribe_token_does_not_log_anyone_in() -> None:
    with pytest.raises(InvalidTokenError):
        verify_token(issue_unsubscribe_token(uuid4(), NOW, AUTH), AUTH)


def test_every_digest_email_carries_one_click_unsubscribe_headers_and_a_footer_link() -> None:
    settings = MailerSettings(PUBLIC_BASE_URL="https://todo.example.com/")
    event = digest("ada@example.com")
    message = message_from_bytes(DigestComposer(settings, AUTH).compose(event).data)

    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https, mailto = (part.strip().strip("<>") for part in message["List-Unsubscribe"].split(","))
    assert https.startswith("https://todo.example.com/api/unsubscribe?token=")
    assert mailto.startswith("mailto:no-reply@todo.localhost?subject=unsubscribe%20")
    token = parse_qs(urlsplit(https).query)["token"][0]
    assert verify_unsubscribe_token(token, AUTH) == event.user_id
    for part in message.walk():
        if part.get_content_maintype() == "text":
            body = part.get_payload(decode=True)
            assert isinstance(body, bytes) and https.encode() in body


class Unsubscribed:
    """The store's answers: `users` unsubscribed; the questions numbered in `failing` (from 1)
    fail, as with the database unreachable."""

    def __init__(self, *users: UUID, failing: frozenset[int] = frozenset()) -> None:
        self.users = set(users)
        self.failing = failing
        self.asked: list[UUID] = []

    async def digest_enabled(self, user_id: UUID) -> bool:
        self.asked.append(user_id)
        if len(self.asked) in self.failing:
            raise ConnectionError("database unreachable")
        return user_id not in self.users

    async def close(self) -> None:
        pass


def mailer_with(
    sender: FakeSender, processed: FakeProcessed, subscriptions: Unsubscribed
) -> Harness:
    instance, _, _, _ = mailer(sender, processed, subscriptions=subscriptions)
    return instance


def test_the_mailer_skips_the_digest_of_a_user_who_unsubscribed_since_and_records_it() -> None:
    ada, bob = digest("ada@example.com"), digest("bob@example.com")
    sender, processed = FakeSender(), FakeProcessed()
    mailer = mailer_with(sender, processed, Unsubscribed(ada.user_id))
    topic = Log()

    process(mailer, [topic.message(ada), topic.message(bob)])

    assert sender.sent_to == ["bob@example.com"]
    assert processed.ids == {ada.event_id, bob.event_id}, "handled: a redelivery sends nothing"


def test_a_digest_skipped_for_an_unsubscribed_user_is_counted_as_skipped_not_as_sent() -> None:
    ada, bob = digest("ada@example.com"), digest("bob@example.com")
    mailer = mailer_with(FakeSender(), FakeProcessed(), Unsubscribed(ada.user_id))
    topic = Log()
    before = email_counts("sent", "skipped")

    process(mailer, [topic.message(ada), topic.message(bob)])

    after = email_counts("sent", "skipped")
    assert {k: after[k] - before[k] for k in after} == {"sent": 1, "skipped": 1}


def test_a_check_made_once_the_previous_email_is_recorded_skips_an_unsubscribed_user() -> None:
    bob, ada, cy = (digest(f"{n}@example.com") for n in ("bob", "ada", "cy"))
    sender, processed = FakeSender(), FakeProcessed()
    mailer = mailer_with(sender, processed, Unsubscribed(ada.user_id))
    topic = Log()

    process(mailer, [topic.message(m) for m in (bob, ada, cy)])

    assert sender.sent_to == ["bob@example.com", "cy@example.com"]
    assert processed.ids == {bob.event_id, ada.event_id, cy.event_id}


def test_a_failed_check_ahead_is_asked_again_in_its_own_turn_and_the_one_before_is_sent() -> None:
    ada, bob = digest("ada@example.com"), digest("bob@example.com")
    sender, processed = FakeSender(), FakeProcessed()
    store = Unsubscribed(bob.user_id, failing=frozenset({2}))  # bob's check, asked ahead
    mailer = mailer_with(sender, processed, store)
    topic = Log()

    result = process(mailer, [topic.message(ada), topic.message(bob)])

    assert sender.sent_to == ["ada@example.com"], "bob unsubscribed: asked again, not sent"
    assert store.asked == [ada.user_id, bob.user_id, bob.user_id]
    assert processed.ids == {ada.event_id, bob.event_id}
    assert (result.commit, result.rewind) == ({("events", 0): 2}, {})
