"""The mailer's decisions for a polled batch, through the shared consumer loop as the composition
root builds it, with fakes for Kafka, SMTP, processed_events and the DLQ: what is sent, skipped,
dead-lettered, committed and rewound."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from email.message import Message
from typing import Any
from uuid import UUID, uuid4

import pytest

from consuming import parking
from consuming.loop import ConsumerLoop
from consuming.poison import HaltedError
from contracts.dead_letters import DeadLetter, LetterKind
from contracts.events import DailyDigestRequested, DigestStats, TaskCreated, encode_event
from mailer.bootstrap import mailer_loop
from mailer.compose import DigestComposer
from mailer.service import Mailer
from mailer.settings import MailerSettings
from mailer.smtp import Permanent, SendOutcome, Sent, Transient
from mailer.subscriptions import Subscriptions
from runtime.health import Heartbeat
from runtime.settings import ConsumerSettings
from tests.support.consumer_fakes import FakeMessage, FakeSource
from tests.support.events import envelope_fields

TOPIC = "events"


class FakeSender:
    """Accepts everything, except recipients scripted to fail (permanently or transiently)."""

    def __init__(self, outcomes: dict[str, SendOutcome] | None = None) -> None:
        self.outcomes = outcomes or {}
        self.sent: list[Message] = []
        self.attempts: list[str] = []
        self.prepared: list[str] = []

    def prepare(self, message: Message) -> None:
        self.prepared.append(str(message["To"]))

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
        self.letters: list[DeadLetter] = []

    def send(self, letters: Sequence[DeadLetter]) -> None:
        self.letters.extend(letters)

    def close(self) -> None:
        pass


class FakeParking:
    """dead_letters in memory, with the real blocking rule (consuming.parking.Blockers)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, int, int], DeadLetter] = {}

    async def blockers(self, aggregate_ids: Sequence[str]) -> parking.Blockers:
        held = parking.Blockers({})
        for letter in self.rows.values():
            if letter.aggregate_id in aggregate_ids:
                held.add(letter.aggregate_id, letter.where)
        return held

    async def park(self, letters: Sequence[DeadLetter]) -> list[DeadLetter]:
        stored = [self.rows.setdefault(letter.where, letter) for letter in letters]
        return stored

    async def close(self) -> None:
        pass


def digest(email: str) -> DailyDigestRequested:
    return DailyDigestRequested(
        **envelope_fields(),
        digest_id=uuid4(),
        digest_date=date(2026, 11, 23),
        email=email,
        stats=DigestStats(total=1, done=0, undone=1),
        undone_titles=["t"],
    )


def task_created() -> TaskCreated:
    return TaskCreated(
        **envelope_fields(),
        task_id=uuid4(),
        title="not for the mailer",
    )


class Log:
    """A topic: messages get increasing offsets per partition."""

    def __init__(self) -> None:
        self.next: dict[int, int] = {}

    def message(
        self, event: Any, partition: int = 0, *, raw: bytes | None = None, header: bool = True
    ) -> FakeMessage:
        offset = self.next.get(partition, 0)
        self.next[partition] = offset + 1
        headers = [("type", event.type.encode())] if header and event is not None else []
        value = raw if raw is not None else encode_event(event)
        return FakeMessage(value, offset, partition, TOPIC, b"key", list(headers))


@dataclass
class Harness:
    """The mailer's loop on a fake Kafka source."""

    loop: ConsumerLoop
    source: FakeSource

    @property
    def heartbeat(self) -> Heartbeat:
        return self.loop.heartbeat


@dataclass
class Step:
    """What one polled batch came to: offsets committed and rewound, and the counters' moves."""

    commit: dict[tuple[str, int], int]
    rewind: dict[tuple[str, int], int]
    sent: int
    duplicates: int
    dead_lettered: int
    ignored: int


def mailer(
    sender: Any = None,
    processed: FakeProcessed | None = None,
    parked: FakeParking | None = None,
    *,
    composer: DigestComposer | None = None,
    subscriptions: Subscriptions | None = None,
) -> tuple[Harness, Any, FakeProcessed, FakeDeadLetters]:
    settings = MailerSettings(MAILER_RETRY_INITIAL_SECONDS=0.001)
    sender = sender or FakeSender()
    processed = processed or FakeProcessed()
    letters = FakeDeadLetters()
    handler = Mailer(
        settings,
        sender=sender,
        processed=processed,
        parking=parked or FakeParking(),
        composer=composer or DigestComposer(settings),
        subscriptions=subscriptions,
    )
    source = FakeSource()
    policy = ConsumerSettings(
        CONSUMER_BUG_RETRIES=2,
        CONSUMER_RETRY_INITIAL_SECONDS=0.001,
        CONSUMER_RETRY_MAX_SECONDS=0.01,
    )
    loop = mailer_loop(handler, source, letters, settings, policy)
    return Harness(loop, source), sender, processed, letters


def process(instance: Harness, batch: Sequence[FakeMessage]) -> Step:
    """One turn of the production loop over `batch`."""
    source, counters = instance.source, instance.loop.counters
    before = (len(source.commits), len(source.seeks), vars(counters).copy())
    source.messages = list(batch)
    instance.loop.step()
    commit: dict[tuple[str, int], int] = {}
    for c in source.commits[before[0] :]:
        commit.update(c)
    rewind: dict[tuple[str, int], int] = {}
    for r in source.seeks[before[1] :]:
        rewind.update(r)
    moved = {k: v - before[2][k] for k, v in vars(counters).items()}
    return Step(
        commit,
        rewind,
        moved["handled"],
        moved["duplicates"],
        moved["dead_letters"],
        moved["skipped"],
    )


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


def test_an_undecodable_digest_message_is_dead_lettered_and_parked_not_skipped() -> None:
    log = Log()
    digest_id = str(uuid4())
    raw = f'{{"type": "email.daily_digest.requested", "digest_id": "{digest_id}"}}'.encode()
    bad = log.message(None, raw=raw)
    parked = FakeParking()
    instance, _, _, letters = mailer(parked=parked)

    result = process(instance, [bad])

    assert [(d.offset, d.kind, d.aggregate_id) for d in letters.letters] == [
        (0, LetterKind.POISON, digest_id)
    ]
    assert letters.letters[0].reason.startswith("undecodable: ValidationError")
    assert list(parked.rows) == [(TOPIC, 0, 0)]
    assert (result.dead_lettered, result.commit) == (1, {(TOPIC, 0): 1})


def test_a_permanent_refusal_is_parked_with_its_reason_not_recorded_and_committed() -> None:
    log = Log()
    ada, bob = digest("ada@example.com"), digest("bob@example.com")
    refusal = Permanent("recipient refused: 550 mailbox unavailable", 550)
    parked = FakeParking()
    instance, sender, processed, letters = mailer(
        FakeSender({"bob@example.com": refusal}), parked=parked
    )

    result = process(instance, [log.message(bob), log.message(ada)])

    assert [(d.value, d.aggregate_id, d.service) for d in letters.letters] == [
        (encode_event(bob), str(bob.digest_id), "mailer")
    ]
    assert "SMTP 550" in letters.letters[0].reason and refusal.reason in letters.letters[0].reason
    assert [str(m["To"]) for m in sender.sent] == ["ada@example.com"], "the mailer carries on"
    assert processed.ids == {ada.event_id}, "parked, so that a replay can still send it"
    assert list(parked.rows) == [(TOPIC, 0, 0)]
    assert (result.dead_lettered, result.sent, result.commit) == (1, 1, {(TOPIC, 0): 2})


def test_a_redelivered_parked_digest_is_not_sent_again_and_later_messages_wait_behind_it() -> None:
    log = Log()
    bob = digest("bob@example.com")
    refusal = Permanent("recipient refused: 550 mailbox unavailable", 550)
    parked = FakeParking()
    instance, sender, _, letters = mailer(FakeSender({"bob@example.com": refusal}), parked=parked)
    first = log.message(bob)
    process(instance, [first])

    result = process(instance, [first, log.message(bob)])  # redelivery, then a duplicate copy

    assert sender.attempts == ["bob@example.com"], "tried once"
    assert [d.kind for d in letters.letters] == [LetterKind.POISON] * 2 + [LetterKind.PARKED]
    assert sorted(parked.rows) == [(TOPIC, 0, 0), (TOPIC, 0, 1)]
    assert result.commit == {(TOPIC, 0): 2}


def test_an_invalid_recipient_address_is_parked_without_talking_to_smtp() -> None:
    log = Log()
    broken = digest("ada@example.com").model_copy(update={"email": "no address at all"})
    instance, sender, _, letters = mailer()

    result = process(instance, [log.message(broken)])

    assert sender.attempts == []
    assert "invalid recipient address" in letters.letters[0].reason
    assert result.dead_lettered == 1


class BuggySender(FakeSender):
    async def send(self, message: Message) -> SendOutcome:
        raise KeyError("a bug in the sender")


def test_a_bug_is_retried_a_bounded_number_of_times_then_the_mailer_halts_not_ready() -> None:
    log = Log()
    instance, _, processed, letters = mailer(BuggySender())
    message = log.message(digest("ada@example.com"))

    for _ in range(2):  # bug_retries=2: rewound and retried, nothing committed
        result = process(instance, [message])
        assert (result.commit, result.rewind) == ({}, {(TOPIC, 0): 0})
    with pytest.raises(HaltedError):
        process(instance, [message])

    readiness = instance.heartbeat.readiness()
    assert not readiness.ready
    assert readiness.reason is not None and "KeyError" in readiness.reason
    assert letters.letters == [] and processed.ids == set(), "a bug is never dead-lettered"


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


class WaitingSender(FakeSender):
    """Waits on its 'server' like a real connection does, noting what was composed meanwhile."""

    def __init__(self, composer: CountingComposer) -> None:
        super().__init__()
        self.composer = composer
        self.composed_while_sending: list[list[str]] = []

    async def send(self, message: Message) -> SendOutcome:
        await asyncio.sleep(0)  # the SMTP round trip
        self.composed_while_sending.append(list(self.composer.composed))
        return await super().send(message)


class CountingComposer(DigestComposer):
    def __init__(self, settings: MailerSettings) -> None:
        super().__init__(settings)
        self.composed: list[str] = []

    def compose(self, event: DailyDigestRequested) -> Message:
        self.composed.append(event.email)
        return super().compose(event)


def test_the_next_digest_is_composed_while_the_current_one_waits_on_smtp_and_once_only() -> None:
    log = Log()
    ada, bob, cyd = (digest(f"{n}@example.com") for n in ("ada", "bob", "cyd"))
    composer = CountingComposer(MailerSettings())
    sender = WaitingSender(composer)
    processed = FakeProcessed(already=[bob.event_id])
    instance, _, _, _ = mailer(sender, processed, composer=composer)

    result = process(instance, [log.message(ada), log.message(bob), log.message(cyd)])

    assert [str(m["To"]) for m in sender.sent] == ["ada@example.com", "cyd@example.com"]
    assert result.sent == 2 and result.duplicates == 1
    # bob's digest was already processed: never composed; cyd's was ready before its turn
    assert sender.composed_while_sending[0] == ["ada@example.com", "cyd@example.com"]
    assert composer.composed == ["ada@example.com", "cyd@example.com"]


class JournalSender(FakeSender):
    """Waits on its 'server' like a real connection does; notes each step in a shared journal."""

    def __init__(self, journal: list[tuple[str, str]]) -> None:
        super().__init__()
        self.journal = journal

    def prepare(self, message: Message) -> None:
        self.journal.append(("prepare", str(message["To"])))

    async def send(self, message: Message) -> SendOutcome:
        await asyncio.sleep(0)  # the SMTP round trips
        self.journal.append(("send", str(message["To"])))
        return await super().send(message)


class JournalProcessed(FakeProcessed):
    def __init__(self, journal: list[tuple[str, str]], emails: dict[UUID, str]) -> None:
        super().__init__()
        self.journal, self.emails = journal, emails

    async def record(self, event_id: UUID) -> None:
        self.journal.append(("record", self.emails[event_id]))
        await super().record(event_id)


def test_the_next_envelope_is_prepared_once_this_email_is_sent_and_before_it_is_recorded() -> None:
    log = Log()
    ada, bob = digest("ada@example.com"), digest("bob@example.com")
    journal: list[tuple[str, str]] = []
    processed = JournalProcessed(journal, {d.event_id: d.email for d in (ada, bob)})
    instance, _, _, _ = mailer(JournalSender(journal), processed)

    result = process(instance, [log.message(ada), log.message(bob)])

    assert result.sent == 2
    # bob's DATA (his "send") only once ada is recorded: one email sent and not recorded at most
    assert journal == [
        ("send", "ada@example.com"),
        ("prepare", "bob@example.com"),
        ("record", "ada@example.com"),
        ("send", "bob@example.com"),
        ("record", "bob@example.com"),
    ]
