"""The mailer's ports (SMTP, processed_events, parking) and the failures of its handler."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol
from uuid import UUID

from consuming import parking
from consuming.poison import TransientError
from contracts.dead_letters import DeadLetter
from mailer.envelope import Email
from mailer.smtp import SendOutcome

DIGEST_TYPE = "email.daily_digest.requested"


class Sender(Protocol):
    def prepare(self, email: Email) -> None:
        """The next email to send: its envelope may be opened ahead (nothing is delivered)."""

    async def send(self, email: Email) -> SendOutcome: ...

    async def close(self) -> None: ...


class ProcessedStore(Protocol):
    async def seen(self, event_ids: Sequence[UUID]) -> set[UUID]: ...

    async def record(self, event_id: UUID) -> None: ...

    async def close(self) -> None: ...


class Parking(Protocol):
    async def blockers(self, aggregate_ids: Sequence[str]) -> parking.Blockers: ...

    async def park(self, letters: Sequence[DeadLetter]) -> list[DeadLetter]: ...

    async def close(self) -> None: ...


class RetryLaterError(Exception):
    """Not finished with this message: it and the rest of the batch are read again."""


class SmtpUnavailableError(TransientError):
    """The SMTP server could not take the digest now (after MAILER_SEND_ATTEMPTS tries)."""
