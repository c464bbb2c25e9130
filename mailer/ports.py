"""The mailer's ports (SMTP, processed_events, parking, dead letters) and what a batch yields."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from email.message import Message
from typing import Protocol
from uuid import UUID

from common import parking
from common.dead_letters import DeadLetter
from common.events import DailyDigestRequested
from common.poison import TransientError
from mailer.incoming import Incoming
from mailer.smtp import SendOutcome

TopicPartitionKey = tuple[str, int]


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
