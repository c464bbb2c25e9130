"""The mailer's ports (SMTP, processed_events, parking, dead letters) and what a batch yields."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from typing import Protocol
from uuid import UUID

from common import parking
from common.dead_letters import DeadLetter, sniff
from common.events import DailyDigestRequested, PublicEvent, decode_event
from common.poison import Kind, TransientError, classify, describe
from mailer.incoming import Incoming
from mailer.smtp import SendOutcome

TopicPartitionKey = tuple[str, int]
DIGEST_TYPE = "email.daily_digest.requested"


class Sender(Protocol):
    async def send(self, message: Message) -> SendOutcome: ...

    async def close(self) -> None: ...


class ProcessedStore(Protocol):
    async def seen(self, event_ids: Sequence[UUID]) -> set[UUID]: ...

    async def record(self, event_id: UUID) -> None: ...

    async def close(self) -> None: ...


class Parking(Protocol):
    async def blockers(self, aggregate_ids: Sequence[str]) -> parking.Blockers: ...

    async def park(self, letters: Sequence[DeadLetter]) -> list[DeadLetter]: ...

    async def close(self) -> None: ...


class DeadLetters(Protocol):
    def send(self, letters: Sequence[DeadLetter]) -> None: ...

    def close(self) -> None: ...


class RetryLaterError(Exception):
    """Not finished with this message: rewind, commit nothing from here on."""


@dataclass
class BatchResult:
    """Offsets to commit (next offset per partition) and partitions to rewind."""

    commit: dict[TopicPartitionKey, int] = field(default_factory=dict)
    rewind: dict[TopicPartitionKey, int] = field(default_factory=dict)
    sent: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    ignored: int = 0
    # (partition, store position, occurred_at) of each digest handled, for the lag metrics
    last_events: list[tuple[TopicPartitionKey, int, datetime]] = field(default_factory=list)


@dataclass
class Counters:
    sent: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    ignored: int = 0
    batches: int = 0


@dataclass(frozen=True)
class Work:
    message: Incoming
    event: DailyDigestRequested | None = None
    poison: str | None = None  # why it cannot be decoded
    aggregate_id: str | None = None

    @property
    def ours(self) -> bool:
        return self.event is not None or self.poison is not None

    @property
    def event_id(self) -> str:
        return str(self.event.event_id) if self.event else ""

    def letter(self, group: str, reason: str) -> DeadLetter:
        m = self.message
        return DeadLetter(
            consumer=group,
            service="mailer",
            topic=m.topic,
            partition=m.partition,
            offset=m.offset,
            key=m.key,
            value=m.value,
            reason=reason,
            aggregate_id=self.aggregate_id,
            event_type=self.event.type if self.event else m.header("type"),
            headers=tuple(m.headers.items()),
        )


class SmtpUnavailableError(TransientError):
    """The SMTP server could not take the digest now (after MAILER_SEND_ATTEMPTS tries)."""


def decode(message: Incoming) -> Work:
    """What a message is to the mailer: a digest, poison (a digest, or a message of unknown type,
    that cannot be decoded), or not its business (any other type: not even parsed)."""
    declared = message.header("type")
    if declared is not None and declared != DIGEST_TYPE:
        return Work(message)  # not ours: no need to parse it
    aggregate_id, sniffed_type = sniff(message.value, message.headers.items())
    try:
        event: PublicEvent = decode_event(message.value or b"")
    except Exception as e:
        if classify(e) is not Kind.POISON:
            raise
        if sniffed_type not in (None, DIGEST_TYPE):
            return Work(message)  # someone else's broken message: the projector parks it
        return Work(message, poison=describe(e), aggregate_id=aggregate_id)
    if not isinstance(event, DailyDigestRequested):
        return Work(message)
    return Work(message, event=event, aggregate_id=str(event.digest_id))


def first_offsets(messages: Sequence[Incoming]) -> dict[TopicPartitionKey, int]:
    first: dict[TopicPartitionKey, int] = {}
    for m in messages:
        first.setdefault((m.topic, m.partition), m.offset)
    return first
