"""The mailer's batch handler on the shared consumer loop as the composition root builds it, with
fakes for Kafka, SMTP, processed_events, parking and the DLQ (tests/unit/test_mailer_*.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any
from uuid import UUID, uuid4

from prometheus_client import REGISTRY

from consuming import parking
from consuming.loop import ConsumerLoop
from contracts.dead_letters import DeadLetter
from contracts.events import DailyDigestRequested, DigestStats, TaskCreated, encode_event
from mailer.bootstrap import mailer_loop
from mailer.compose import DigestComposer
from mailer.envelope import Email
from mailer.service import Mailer
from mailer.settings import MailerSettings
from mailer.smtp import SendOutcome, Sent
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
        self.sent: list[Email] = []
        self.attempts: list[str] = []
        self.prepared: list[str] = []

    @property
    def sent_to(self) -> list[str]:
        return [email.recipients[0] for email in self.sent]

    def prepare(self, email: Email) -> None:
        self.prepared.append(email.recipients[0])

    async def send(self, email: Email) -> SendOutcome:
        recipient = email.recipients[0]
        self.attempts.append(recipient)
        outcome = self.outcomes.get(recipient, Sent())
        if isinstance(outcome, Sent):
            self.sent.append(email)
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


def email_counts(*names: str) -> dict[str, float]:
    """The mailer's `emails_<name>_total` counters now (0 before their first increment)."""
    return {name: REGISTRY.get_sample_value(f"emails_{name}_total") or 0.0 for name in names}


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
