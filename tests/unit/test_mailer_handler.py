"""The mailer's decisions for a polled batch, with fakes for SMTP, processed_events and the DLQ:
what is sent, skipped, dead-lettered, committed and rewound."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime
from email.message import Message
from typing import Any
from uuid import UUID, uuid4

import pytest

from common.events import DailyDigestRequested, DigestStats, TaskCreated, encode_event
from mailer.compose import DigestComposer
from mailer.incoming import Incoming
from mailer.service import BatchResult, Mailer
from mailer.settings import MailerSettings
from mailer.smtp import Permanent, SendOutcome, Sent, Transient

TOPIC = "events"


class FakeSender:
    """Accepts everything, except recipients scripted to fail (permanently or transiently)."""

    def __init__(self, outcomes: dict[str, SendOutcome] | None = None) -> None:
        self.outcomes = outcomes or {}
        self.sent: list[Message] = []
        self.attempts: list[str] = []

    async def send(self, message: Message) -> SendOutcome:
        recipient = str(message["To"])
        self.attempts.append(recipient)
        outcome = self.outcomes.get(recipient, Sent())
        if isinstance(outcome, Sent):
            self.sent.append(message)
        return outcome

    async def close(self) -> None:
        pass


class FakeProcessed:
    def __init__(self, already: Sequence[UUID] = (), broken: bool = False) -> None:
        self.ids = set(already)
        self.broken = broken
        self.queries = 0

    async def seen(self, event_ids: Sequence[UUID]) -> set[UUID]:
        self.queries += 1
        if self.broken:
            raise ConnectionError("database down")
        return self.ids & set(event_ids)

    async def record(self, event_id: UUID) -> None:
        self.ids.add(event_id)

    async def close(self) -> None:
        pass


class FakeDeadLetters:
    def __init__(self) -> None:
        self.letters: list[tuple[Incoming, str, int | None]] = []

    async def send(self, message: Incoming, reason: str, code: int | None) -> None:
        self.letters.append((message, reason, code))

    def close(self) -> None:
        pass


def digest(email: str) -> DailyDigestRequested:
    return DailyDigestRequested(
        event_id=uuid4(),
        occurred_at=datetime(2026, 11, 23, tzinfo=UTC),
        user_id=uuid4(),
        position=1,
        aggregate_version=1,
        digest_id=uuid4(),
        digest_date=date(2026, 11, 23),
        email=email,
        stats=DigestStats(total=1, done=0, undone=1),
        undone_titles=["t"],
    )


def task_created() -> TaskCreated:
    return TaskCreated(
        event_id=uuid4(),
        occurred_at=datetime(2026, 11, 23, tzinfo=UTC),
        user_id=uuid4(),
        position=1,
        aggregate_version=1,
        task_id=uuid4(),
        title="not for the mailer",
    )


class Log:
    """A topic: messages get increasing offsets per partition."""

    def __init__(self) -> None:
        self.next: dict[int, int] = {}

    def message(
        self, event: Any, partition: int = 0, *, raw: bytes | None = None, header: bool = True
    ) -> Incoming:
        offset = self.next.get(partition, 0)
        self.next[partition] = offset + 1
        headers = {"type": event.type.encode()} if header and event is not None else {}
        value = raw if raw is not None else encode_event(event)
        return Incoming(TOPIC, partition, offset, b"key", value, headers)


def mailer(
    sender: FakeSender | None = None, processed: FakeProcessed | None = None
) -> tuple[Mailer, FakeSender, FakeProcessed, FakeDeadLetters]:
    settings = MailerSettings()
    sender = sender or FakeSender()
    processed = processed or FakeProcessed()
    letters = FakeDeadLetters()
    instance = Mailer(
        settings,
        sender=sender,
        processed=processed,
        dead_letters=letters,
        composer=DigestComposer(settings),
    )
    return instance, sender, processed, letters


def process(instance: Mailer, batch: Sequence[Incoming]) -> BatchResult:
    return asyncio.run(instance.process_batch(batch))


def test_new_digests_are_sent_recorded_and_their_offsets_committed() -> None:
    log = Log()
    ada, bob = digest("ada@example.com"), digest("bob@example.com")
    instance, sender, processed, _ = mailer()

    result = process(instance, [log.message(ada, 0), log.message(bob, 1), log.message(ada, 1)])

    assert [str(m["To"]) for m in sender.sent] == ["ada@example.com", "bob@example.com"]
    assert processed.ids == {ada.event_id, bob.event_id}
    assert result.commit == {(TOPIC, 0): 1, (TOPIC, 1): 2}
    assert (result.sent, result.duplicates, result.rewind) == (2, 1, {})
    assert processed.queries == 1, "one processed_events query per batch"


def test_a_digest_already_processed_is_skipped_without_sending_and_still_committed() -> None:
    log = Log()
    ada = digest("ada@example.com")
    instance, sender, _, _ = mailer(processed=FakeProcessed(already=[ada.event_id]))

    result = process(instance, [log.message(ada)])

    assert sender.attempts == []
    assert (result.duplicates, result.commit) == (1, {(TOPIC, 0): 1})


def test_other_event_types_are_ignored_but_committed_with_or_without_a_type_header() -> None:
    log = Log()
    instance, sender, processed, _ = mailer()

    result = process(
        instance, [log.message(task_created()), log.message(task_created(), header=False)]
    )

    assert sender.attempts == [] and processed.ids == set()
    assert (result.ignored, result.commit) == (2, {(TOPIC, 0): 2})


def test_an_undecodable_message_is_skipped_with_a_warning_not_dead_lettered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log = Log()
    bad = log.message(None, raw=b'{"type": "email.daily_digest.requested", "oops": 1}')
    instance, _, _, letters = mailer()

    with caplog.at_level(logging.WARNING):
        result = process(instance, [bad])

    assert letters.letters == []
    assert result.commit == {(TOPIC, 0): 1}
    assert "undecodable message skipped" in caplog.text


def test_a_permanent_refusal_is_dead_lettered_with_its_reason_recorded_and_committed() -> None:
    log = Log()
    ada, bob = digest("ada@example.com"), digest("bob@example.com")
    refusal = Permanent("recipient refused: 550 mailbox unavailable", 550)
    instance, sender, processed, letters = mailer(FakeSender({"bob@example.com": refusal}))

    result = process(instance, [log.message(bob), log.message(ada)])

    assert [(m.value, reason, code) for m, reason, code in letters.letters] == [
        (encode_event(bob), refusal.reason, 550)
    ]
    assert [str(m["To"]) for m in sender.sent] == ["ada@example.com"], "the mailer carries on"
    assert processed.ids == {ada.event_id, bob.event_id}, "not retried forever"
    assert (result.dead_lettered, result.sent, result.commit) == (1, 1, {(TOPIC, 0): 2})


def test_an_invalid_recipient_address_is_dead_lettered_without_talking_to_smtp() -> None:
    log = Log()
    broken = digest("ada@example.com").model_copy(update={"email": "no address at all"})
    instance, sender, _, letters = mailer()

    result = process(instance, [log.message(broken)])

    assert sender.attempts == []
    assert "invalid recipient address" in letters.letters[0][1]
    assert result.dead_lettered == 1


def test_a_lasting_transient_failure_commits_what_is_done_and_rewinds_the_rest() -> None:
    log = Log()
    ada, bob, carol, dan = (digest(f"{n}@example.com") for n in ("ada", "bob", "carol", "dan"))
    down = Transient("connection refused")
    instance, sender, processed, _ = mailer(FakeSender({"bob@example.com": down}))
    batch = [log.message(ada, 0), log.message(bob, 0), log.message(carol, 1), log.message(dan, 2)]

    result = process(instance, batch)

    assert [str(m["To"]) for m in sender.sent] == ["ada@example.com"]
    assert processed.ids == {ada.event_id}, "nothing unsent is recorded"
    assert result.commit == {(TOPIC, 0): 1}
    assert result.rewind == {(TOPIC, 0): 1, (TOPIC, 1): 0, (TOPIC, 2): 0}


def test_when_processed_events_cannot_be_checked_nothing_is_sent_and_the_batch_is_rewound() -> None:
    log = Log()
    instance, sender, _, _ = mailer(processed=FakeProcessed(broken=True))

    result = process(instance, [log.message(digest("ada@example.com"), 2)])

    assert sender.attempts == []
    assert (result.commit, result.rewind) == ({}, {(TOPIC, 2): 0})
