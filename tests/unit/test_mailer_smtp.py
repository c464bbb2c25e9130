"""SMTP failures classified, and the sender against a local aiosmtpd server: one reused
connection, transient failures retried with backoff, permanent ones reported at once."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

import pytest
from aiosmtplib import (
    SMTPAuthenticationError,
    SMTPConnectResponseError,
    SMTPDataError,
    SMTPRecipientRefused,
    SMTPRecipientsRefused,
    SMTPSenderRefused,
    SMTPServerDisconnected,
)

from mailer.envelope import Email
from mailer.settings import MailerSettings
from mailer.smtp import Permanent, Sent, SmtpSender, Transient, classify
from tests.support.smtp import SmtpServer, free_port, running_smtp_server


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (SMTPRecipientsRefused([SMTPRecipientRefused(550, "no such user", "a@b.c")]), Permanent),
        (SMTPRecipientsRefused([SMTPRecipientRefused(450, "mailbox busy", "a@b.c")]), Transient),
        (SMTPRecipientRefused(553, "bad mailbox", "a@b.c"), Permanent),
        (SMTPDataError(554, "content rejected"), Permanent),
        (SMTPDataError(451, "try later"), Transient),
        (SMTPServerDisconnected("gone"), Transient),
        (ConnectionRefusedError(111, "refused"), Transient),
        (TimeoutError(), Transient),
        # Not this message's fault: configuration or server-wide trouble, keep retrying.
        (SMTPAuthenticationError(535, "bad credentials"), Transient),
        (SMTPSenderRefused(553, "sender not allowed", "x@y.z"), Transient),
        (SMTPConnectResponseError(554, "no service"), Transient),
    ],
)
def test_failures_are_classified_as_permanent_only_when_the_message_itself_is_refused(
    error: BaseException, kind: type[Any]
) -> None:
    assert isinstance(classify(error), kind)


def test_a_recipient_refusal_keeps_the_server_code_and_text_as_the_reason() -> None:
    outcome = classify(SMTPRecipientRefused(550, "5.1.1 mailbox unavailable", "a@b.c"))

    assert outcome == Permanent("recipient refused: 550 5.1.1 mailbox unavailable", 550)


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with running_smtp_server() as server:
        yield server


def message(to: str) -> Email:
    msg = EmailMessage()
    msg["From"] = "TODO <no-reply@todo.localhost>"
    msg["To"] = to
    msg["Subject"] = "hello"
    msg.set_content("body")
    return Email("no-reply@todo.localhost", (to,), msg.as_bytes(policy=SMTP))


def settings_for(port: int, **overrides: Any) -> MailerSettings:
    values: dict[str, Any] = {
        "SMTP_PORT": port,
        "MAILER_RETRY_INITIAL_SECONDS": 0.01,
        "MAILER_RETRY_MAX_SECONDS": 0.05,
        "MAILER_SEND_ATTEMPTS": 4,
        "SMTP_TIMEOUT_SECONDS": 5,
        **overrides,
    }
    return MailerSettings(**values)


def send_all(sender: SmtpSender, *messages: Email) -> list[Any]:
    async def go() -> list[Any]:
        try:
            return [await sender.send(m) for m in messages]
        finally:
            await sender.close()

    return asyncio.run(go())


def test_one_connection_is_reused_across_messages(smtp: SmtpServer) -> None:
    sender = SmtpSender(settings_for(smtp.port), lambda: False)

    outcomes = send_all(sender, *(message(f"u{i}@example.com") for i in range(5)))

    assert outcomes == [Sent()] * 5
    assert len(smtp.received) == 5
    assert sender.connections_opened == 1 and smtp.connections == 1


def test_transient_failures_are_retried_until_the_server_recovers(smtp: SmtpServer) -> None:
    smtp.fail_transiently(2)
    sender = SmtpSender(settings_for(smtp.port), lambda: False)

    outcomes = send_all(sender, message("ada@example.com"))

    assert outcomes == [Sent()]
    assert smtp.transient_failures_served == 2
    assert len(smtp.received) == 1


def test_a_permanent_refusal_is_reported_at_once_and_the_connection_serves_the_next(
    smtp: SmtpServer,
) -> None:
    smtp.reject_recipient("bob@example.com")
    sender = SmtpSender(settings_for(smtp.port), lambda: False)

    bob, ada = send_all(sender, message("bob@example.com"), message("ada@example.com"))

    assert isinstance(bob, Permanent) and bob.code == 550
    assert ada == Sent()
    assert smtp.rejections_served == 1 and sender.connections_opened == 1


def test_a_server_that_stays_down_gives_transient_after_the_attempts_never_permanent() -> None:
    sender = SmtpSender(settings_for(free_port()), lambda: False)

    [outcome] = send_all(sender, message("ada@example.com"))

    assert isinstance(outcome, Transient)
    assert "ConnectionRefused" in outcome.reason or "connect" in outcome.reason.lower()


def test_an_idle_connection_closed_by_the_server_is_reopened_without_a_failure(
    smtp: SmtpServer,
) -> None:
    sender = SmtpSender(settings_for(smtp.port, MAILER_SEND_ATTEMPTS=1), lambda: False)

    async def go() -> list[Any]:
        first = await sender.send(message("ada@example.com"))
        await asyncio.to_thread(smtp.drop_connections)
        second = await sender.send(message("bob@example.com"))
        await sender.close()
        return [first, second]

    assert asyncio.run(go()) == [Sent(), Sent()]
    assert sender.connections_opened == 2


async def until(condition: Callable[[], bool]) -> None:
    """Poll (the server runs on its own thread) for up to 5 s."""
    for _ in range(500):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the condition never held")


def test_a_prepared_message_has_its_envelope_opened_ahead_and_is_delivered_only_by_send(
    smtp: SmtpServer,
) -> None:
    sender = SmtpSender(settings_for(smtp.port), lambda: False)
    ada = message("ada@example.com")

    async def go() -> tuple[int, Any]:
        sender.prepare(ada)
        await until(lambda: smtp.recipients_accepted == 1)
        delivered_before_send = len(smtp.received)
        outcome = await sender.send(ada)
        await sender.close()
        return delivered_before_send, outcome

    delivered_before_send, outcome = asyncio.run(go())

    assert delivered_before_send == 0, "an opened envelope delivers nothing"
    assert outcome == Sent()
    assert [r.rcpt_tos for r in smtp.received] == [("ada@example.com",)]
    assert smtp.recipients_accepted == 1, "send completed the envelope opened ahead"
    assert sender.connections_opened == 1


def test_a_prepared_message_that_is_not_sent_is_reset_and_never_delivered(
    smtp: SmtpServer,
) -> None:
    sender = SmtpSender(settings_for(smtp.port), lambda: False)
    ada, bob, cyd = (message(f"{n}@example.com") for n in ("ada", "bob", "cyd"))

    async def go() -> Any:
        sender.prepare(ada)
        await until(lambda: smtp.recipients_accepted == 1)
        outcome = await sender.send(bob)  # ada's envelope is reset first
        sender.prepare(cyd)
        await until(lambda: smtp.recipients_accepted == 3)
        await sender.close()  # with cyd's envelope open
        return outcome

    assert asyncio.run(go()) == Sent()
    assert [r.rcpt_tos for r in smtp.received] == [("bob@example.com",)]
    assert sender.connections_opened == 1


def test_a_recipient_refused_while_preparing_is_reported_by_send_as_permanent(
    smtp: SmtpServer,
) -> None:
    smtp.reject_recipient("bob@example.com")
    sender = SmtpSender(settings_for(smtp.port), lambda: False)
    bob, ada = message("bob@example.com"), message("ada@example.com")

    async def go() -> list[Any]:
        sender.prepare(bob)
        refused = await sender.send(bob)
        sender.prepare(ada)
        sent = await sender.send(ada)
        await sender.close()
        return [refused, sent]

    refused, sent = asyncio.run(go())

    assert isinstance(refused, Permanent) and refused.code == 550
    assert sent == Sent()
    assert [r.rcpt_tos for r in smtp.received] == [("ada@example.com",)]
    assert sender.connections_opened == 1


def test_a_message_prepared_during_a_send_waits_for_it_then_all_go_in_order_one_envelope_each(
    smtp: SmtpServer,
) -> None:
    sender = SmtpSender(settings_for(smtp.port), lambda: False)
    emails = [message(f"u{i}@example.com") for i in range(20)]

    async def go() -> list[Any]:
        outcomes = []
        for email, following in zip(emails, [*emails[1:], None], strict=True):
            sending = asyncio.ensure_future(sender.send(email))
            await asyncio.sleep(0)  # the send is under way, as when the mailer composes ahead
            if following is not None:
                sender.prepare(following)
            outcomes.append(await sending)
        await sender.close()
        return outcomes

    assert asyncio.run(go()) == [Sent()] * 20
    assert [r.rcpt_tos[0] for r in smtp.received] == [f"u{i}@example.com" for i in range(20)]
    assert smtp.recipients_accepted == 20, "every envelope opened once: none reset and redone"
    assert sender.connections_opened == 1
