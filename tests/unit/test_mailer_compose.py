"""The digest email: templates, escaping, stable headers, settings validation."""

from __future__ import annotations

from datetime import UTC, date, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any
from uuid import UUID

import pytest
from pydantic import ValidationError

from contracts.events import DailyDigestRequested, DigestStats
from mailer.compose import DigestComposer, InvalidRecipientError, message_id_for
from mailer.envelope import Email
from mailer.settings import MailerSettings

EVENT_ID = UUID("11111111-2222-3333-4444-555555555555")


def digest(**overrides: Any) -> DailyDigestRequested:
    values: dict[str, Any] = {
        "event_id": EVENT_ID,
        "occurred_at": datetime(2026, 11, 23, 0, 0, 3, tzinfo=UTC),
        "user_id": UUID(int=7),
        "position": 42,
        "aggregate_version": 1,
        "digest_id": UUID(int=9),
        "digest_date": date(2026, 11, 23),
        "email": "ada@example.com",
        "stats": DigestStats(total=3, done=1, undone=2),
        "undone_titles": ["first", "second"],
        **overrides,
    }
    return DailyDigestRequested(**values)


def composer(**settings: Any) -> DigestComposer:
    return DigestComposer(MailerSettings(**settings))


def received(email: Email) -> EmailMessage:
    """The message as a receiving mail client parses it (with its own line ends)."""
    parsed = message_from_bytes(email.data.replace(b"\r\n", b"\n"), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def body(email: Email, subtype: str) -> str:
    part = received(email).get_body(preferencelist=(subtype,))
    assert part is not None
    return str(part.get_content())


def test_the_html_part_escapes_titles_and_the_text_part_keeps_them_verbatim_on_one_line() -> None:
    hostile = '<script>alert("x")</script> & <b>bold</b>\nsecond line'

    message = composer().compose(digest(undone_titles=[hostile, "ok"]))

    html, text = body(message, "html"), body(message, "plain")
    assert "<script>" not in html and "<b>bold</b>" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html
    assert '  - <script>alert("x")</script> & <b>bold</b> second line\n' in text


def test_the_email_shows_the_stats_the_undone_titles_and_how_many_more_are_not_listed() -> None:
    event = digest(stats=DigestStats(total=30, done=5, undone=25), undone_titles=["a", "b"])

    message = composer().compose(event)

    text, html = body(message, "plain"), body(message, "html")
    assert "Tasks:     30\n  Done:      5\n  Still to do: 25\n" in text
    assert "  - a\n  - b\n  ... and 23 more\n" in text
    assert 'id="stat-total">30<' in html and 'id="stat-undone">25<' in html
    assert "&hellip; and 23 more" in html
    assert received(message)["Subject"] == "Your TODO digest for Mon 23 Nov 2026: 25 to do"


def test_a_user_with_everything_done_is_congratulated_instead_of_listing_nothing() -> None:
    event = digest(stats=DigestStats(total=2, done=2, undone=0), undone_titles=[])

    message = composer().compose(event)

    assert "Everything is done. Nice work!" in body(message, "plain")
    assert "Everything is done. Nice work!" in body(message, "html")


def test_the_same_event_always_gives_the_same_bytes_with_a_message_id_from_the_event_id() -> None:
    first = composer().compose(digest()).data
    second = composer().compose(digest()).data

    parsed = message_from_bytes(first, policy=policy.default)
    assert first == second
    assert parsed["Message-ID"] == f"<digest-{EVENT_ID}@todo.localhost>"
    assert parsed["Message-ID"] == message_id_for(EVENT_ID, "todo.localhost")
    assert parsed["Date"] == "Mon, 23 Nov 2026 00:00:03 +0000"
    assert parsed["From"] == "TODO <no-reply@todo.localhost>"
    assert parsed["To"] == "ada@example.com"
    assert parsed["Auto-Submitted"] == "auto-generated"


def test_the_message_id_uses_the_sender_domain() -> None:
    message = composer(SMTP_SENDER="Digest <digest@mail.example.org>").compose(digest())

    assert received(message)["Message-ID"] == f"<digest-{EVENT_ID}@mail.example.org>"


def test_non_ascii_names_and_addresses_are_encoded_so_mail_clients_read_them_back() -> None:
    accented = composer(SMTP_SENDER="Tâches à faire <todo@example.org>")

    plain = accented.compose(digest(undone_titles=["écrire le rapport ✓"]))
    international = received(accented.compose(digest(email="josé@exämple.com")))

    assert received(plain)["From"] == "Tâches à faire <todo@example.org>"
    assert "  - écrire le rapport ✓\n" in body(plain, "plain")
    assert international["To"] == "josé@exämple.com"
    assert international["Message-ID"] == f"<digest-{EVENT_ID}@example.org>"


@pytest.mark.parametrize(
    "address", ["not-an-address", "ada@example.com, eve@evil.test", "ada@example.com\r\nBcc: x@y.z"]
)
def test_an_address_that_is_not_exactly_one_mailbox_is_refused_as_an_invalid_recipient(
    address: str,
) -> None:
    with pytest.raises(InvalidRecipientError):
        composer().compose(digest(email=address))


@pytest.mark.parametrize(
    "sender", ["", "no-at-sign", "a@b.c, d@e.f", "TODO <x@localhost>", "A <a@b.c>\nBcc: e@f.g"]
)
def test_the_sender_setting_must_be_exactly_one_valid_address(sender: str) -> None:
    with pytest.raises(ValidationError, match="SMTP_SENDER"):
        MailerSettings(SMTP_SENDER=sender)


PROD_OK: dict[str, Any] = {
    "ENVIRONMENT": "prod",
    "SMTP_HOST": "in-v3.mailjet.com",
    "SMTP_PORT": 587,
    "SMTP_USERNAME": "api-key",
    "SMTP_PASSWORD": "api-secret",
    "SMTP_STARTTLS": True,
    "SMTP_SENDER": "TODO <no-reply@todo.example.com>",
}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"SMTP_PASSWORD": ""}, "SMTP_USERNAME and SMTP_PASSWORD"),
        ({"SMTP_USERNAME": ""}, "SMTP_USERNAME and SMTP_PASSWORD"),
        ({"SMTP_STARTTLS": False}, "SMTP_STARTTLS"),
        ({"SMTP_SENDER": "TODO <no-reply@todo.localhost>"}, "real domain"),
        ({"MAILER_FAULT_PAUSE": "after_send"}, "tests only"),
    ],
)
def test_production_refuses_unsafe_smtp_settings(override: dict[str, Any], message: str) -> None:
    assert MailerSettings(**PROD_OK).ENVIRONMENT == "prod"
    with pytest.raises(ValidationError, match=message):
        MailerSettings(**{**PROD_OK, **override})


def test_the_smtp_password_never_appears_when_settings_are_printed_or_dumped() -> None:
    settings = MailerSettings(**PROD_OK)

    assert "api-secret" not in repr(settings)
    assert "api-secret" not in str(settings.model_dump())
    assert "api-secret" not in settings.model_dump_json()


def test_the_envelope_has_the_bare_addresses_and_asks_for_smtputf8_only_for_a_non_ascii_one() -> (
    None
):
    accented = composer(SMTP_SENDER="Tâches à faire <todo@example.org>")

    named = accented.compose(digest(email="Ada Lovelace <ada@example.com>"))
    international = accented.compose(digest(email="josé@exämple.com"))

    assert (named.sender, named.recipients, named.utf8) == (
        "todo@example.org",
        ("ada@example.com",),
        False,
    )
    assert received(named)["To"] == "Ada Lovelace <ada@example.com>"
    assert (international.recipients, international.utf8) == (("josé@exämple.com",), True)
