"""One digest's delivery: compose, send over SMTP, record in processed_events, in that order.

Composing (Jinja2 + MIME) is pure CPU and the same bytes every time, so the batch loop asks for the
next digest's email ahead (`plan`): it is built while this one waits on the SMTP server
and on PostgreSQL, instead of between them. Once this one is sent, the next one's SMTP envelope
(MAIL FROM, RCPT TO) goes out while this one's processed_events INSERT, then the next user's
subscription check, wait on PostgreSQL (`Sender.prepare`); its DATA, which is what delivers it,
only once this one is recorded. So the crash window (SMTP accepted, not yet recorded) is still one
email wide, and the check is made just before the DATA it allows.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from uuid import UUID

from consuming.poison import PoisonError
from contracts.events import DailyDigestRequested, decode_event
from mailer.compose import DigestComposer, InvalidRecipientError
from mailer.envelope import Email
from mailer.ports import ProcessedStore, Sender, SmtpUnavailableError
from mailer.settings import FaultPoint, MailerSettings
from mailer.smtp import Permanent, Transient
from mailer.subscriptions import Subscriptions

log = logging.getLogger(__name__)


@dataclass
class Delivery:
    settings: MailerSettings
    composer: DigestComposer
    sender: Sender
    processed: ProcessedStore
    subscriptions: Subscriptions | None = None
    # event id -> its email (or why it has none), composed ahead of its turn
    _composed: dict[UUID, Email | InvalidRecipientError] = field(default_factory=dict, init=False)
    _next_after: dict[UUID, DailyDigestRequested] = field(default_factory=dict, init=False)
    # event id -> whether its user is subscribed, asked once the previous email was recorded
    _subscribed_ahead: dict[UUID, bool] = field(default_factory=dict, init=False)

    def plan(self, events: Sequence[DailyDigestRequested]) -> None:
        """The digests a batch is about to deliver, in order: delivering one composes the next
        ahead. What was composed for a previous plan and not delivered is dropped."""
        self._composed.clear()
        self._subscribed_ahead.clear()
        self._next_after = {a.event_id: b for a, b in itertools.pairwise(events)}

    async def deliver(self, event: DailyDigestRequested) -> bool:
        """Compose, send and record one digest: True once sent. Raises PoisonError for a
        permanent refusal, TransientError-like failures otherwise. A digest of a user who has
        turned the digest off since it was recorded is not sent, only recorded as handled: False."""
        if (following := self._next_after.pop(event.event_id, None)) is not None:
            # Composed at the loop's next idle moment: while this email waits on the servers.
            asyncio.get_running_loop().call_soon(self._compose_ahead, following)
        if not await self._subscribed(event):
            log.info(
                "digest not sent: the user unsubscribed", extra={"event_id": str(event.event_id)}
            )
            await self.processed.record(event.event_id)
            return False
        email = self._composed.pop(event.event_id, None)
        if email is None:
            try:
                email = self.composer.compose(event)
            except InvalidRecipientError as e:
                email = e
        if isinstance(email, InvalidRecipientError):
            raise PoisonError(f"invalid recipient address: {email}") from email
        outcome = await self.sender.send(email)
        if isinstance(outcome, Permanent):
            code = f" (SMTP {outcome.code})" if outcome.code else ""
            raise PoisonError(f"refused permanently{code}: {outcome.reason}")
        if isinstance(outcome, Transient):
            raise SmtpUnavailableError(outcome.reason)
        await self.fault("after_send")
        if following is not None:
            self._prepare(following)
        await self.processed.record(event.event_id)
        if following is not None:
            # Still while the next envelope goes out, and right before the next email's DATA.
            await self._check_ahead(following)
        return True

    async def replay(self, value: bytes | None) -> bool:
        """`dlq replay`: deliver a parked digest message the live way; False if it had already
        been delivered (idempotent). Raises what the live path would park or retry on."""
        event = decode_event(value or b"")
        if not isinstance(event, DailyDigestRequested):
            raise PoisonError(f"not a digest event: {event.type}")
        if await self.processed.seen([event.event_id]):
            return False
        await self.deliver(event)
        return True

    async def _check_ahead(self, event: DailyDigestRequested) -> None:
        """Ask whether the next email's user is still subscribed. A failure is left for that
        email's own turn, which asks again and reports it: this email is sent and recorded."""
        if self.subscriptions is None:
            return
        try:
            self._subscribed_ahead[event.event_id] = await self.subscriptions.digest_enabled(
                event.user_id
            )
        except Exception:
            log.debug("checking the next subscription ahead failed", exc_info=True)

    async def _subscribed(self, event: DailyDigestRequested) -> bool:
        """Asked at send time: the answer asked once the previous email was recorded, or now."""
        if self.subscriptions is None:
            return True
        known = self._subscribed_ahead.pop(event.event_id, None)
        if known is None:
            return await self.subscriptions.digest_enabled(event.user_id)
        return known

    def _prepare(self, event: DailyDigestRequested) -> None:
        """Let the sender open the envelope of the next email while this one is recorded (an
        envelope is reset if its email is not sent next: its user unsubscribed, a failure)."""
        email = self._composed.get(event.event_id)
        if isinstance(email, Email):
            self.sender.prepare(email)

    def _compose_ahead(self, event: DailyDigestRequested) -> None:
        if event.event_id in self._composed:
            return
        try:
            self._composed[event.event_id] = self.composer.compose(event)
        except InvalidRecipientError as e:
            self._composed[event.event_id] = e
        except Exception:  # a bug: deliver() composes again in its turn and reports it there
            log.debug("composing ahead failed", exc_info=True)

    async def close(self) -> None:
        await self.sender.close()
        await self.processed.close()
        if self.subscriptions is not None:
            await self.subscriptions.close()

    async def fault(self, point: FaultPoint) -> None:
        """TEST-ONLY (MAILER_FAULT_PAUSE): freeze here so a test can SIGKILL the process."""
        if point != self.settings.MAILER_FAULT_PAUSE:
            return
        log.warning("fault injection: paused", extra={"fault_point": point})
        sys.stderr.flush()
        await asyncio.Event().wait()  # forever
