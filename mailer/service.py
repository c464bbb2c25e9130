"""The mailer's batch handler on the shared consumer loop (consuming.loop, which polls group
MAILER_GROUP_ID on KAFKA_TOPIC, decodes, publishes dead letters and commits offsets). The
loop hands over only `email.daily_digest.requested`: other types are skipped from their `type`
header without decoding; a digest message (or one of no readable type) that cannot be decoded is
POISON (consuming.poison).

Per polled batch:
1. two queries: which digest event ids are already in processed_events (a redelivery -> skipped)
   and which digests have messages parked in dead_letters (consuming.parking);
2. for each message, in order: poison, or a digest parked behind an earlier one, is parked; a new
   digest is rendered, sent on the reused SMTP connection, then its id INSERTed into
   processed_events (one round trip, so the unrecorded window is one email wide; mailer.delivery
   renders the next digest's email while this one waits on the network); a permanent refusal or
   an invalid recipient is POISON: parked, not recorded, so `python -m mailer dlq replay` can send
   it after a fix.

A TRANSIENT failure (SMTP after MAILER_SEND_ATTEMPTS, PostgreSQL) stops the batch: what was handled
is committed, every partition is rewound to its first unhandled message and read again after
MAILER_RETRY_INITIAL_SECONDS, forever. A BUG is retried the same way CONSUMER_BUG_RETRIES times,
then the mailer halts. Nothing is committed before its email is sent and recorded or its message
parked (and published on events.dlq).
"""

from __future__ import annotations

import asyncio
import logging
from uuid import UUID

from consuming import parking
from consuming.batch import Batch, BatchResult, Delivered, Skipped
from consuming.loop import Retries
from consuming.poison import Kind, classify, describe
from contracts.dead_letters import DeadLetter
from contracts.events import DailyDigestRequested
from mailer.compose import DigestComposer
from mailer.delivery import Delivery
from mailer.ports import Parking, ProcessedStore, RetryLaterError, Sender
from mailer.settings import MailerSettings
from mailer.subscriptions import Subscriptions
from runtime import metrics, tracing

log = logging.getLogger(__name__)


class Mailer:
    def __init__(
        self,
        settings: MailerSettings,
        *,
        sender: Sender,
        processed: ProcessedStore,
        parking: Parking,
        composer: DigestComposer,
        group: str = "mailer",
        subscriptions: Subscriptions | None = None,
    ) -> None:
        self._delivery = Delivery(settings, composer, sender, processed, subscriptions)
        self._parking = parking
        self._group = group
        # One event loop for the mailer's life: its SMTP and PostgreSQL connections belong to it.
        self._runner: asyncio.Runner | None = None
        metrics.register(*metrics.MAILER)

    def handle(self, batch: Batch, retries: Retries) -> BatchResult:
        if self._runner is None:
            self._runner = asyncio.Runner()
        return self._runner.run(self.process_batch(batch, retries))

    def close(self) -> None:
        runner, self._runner = self._runner, None
        with runner or asyncio.Runner() as running:
            running.run(self.aclose())

    async def aclose(self) -> None:
        await self._delivery.close()
        await self._parking.close()

    # --- one polled batch --------------------------------------------------------------------

    async def process_batch(self, batch: Batch, retries: Retries) -> BatchResult:
        """Handle a decoded batch in order; raises HaltedError once a bug outlasted its retries."""
        result = BatchResult()
        digests = [d.event for d in batch.events if isinstance(d.event, DailyDigestRequested)]
        aggregates = [i.aggregate_id for i in batch.items if not isinstance(i, Skipped)]
        try:
            seen = await self._delivery.processed.seen([e.event_id for e in digests])
            held = await self._parking.blockers([a for a in aggregates if a])
        except Exception as e:
            retries.failed(e, "checking processed and parked digests")
            result.done = 0
            self._log_batch(batch, result)
            return result
        trace_token = tracing.set_current(None)
        self._delivery.plan([e for e in digests if e.event_id not in seen])
        for index, item in enumerate(batch.items):
            if isinstance(item, Skipped):
                continue
            # Each message's log lines carry the trace of the command/batch behind it.
            tracing.set_current(tracing.continue_or_start(tracing.from_kafka_headers(item.headers)))
            try:
                await self._handle(item, seen, held, result, retries)
            except RetryLaterError:
                result.done = index
                break
        tracing.reset_current(trace_token)
        self._delivery.plan([])
        if result.handled or result.parked:
            await self._delivery.fault("before_commit")
        self._log_batch(batch, result)
        return result

    async def _handle(
        self,
        item: Delivered | DeadLetter,
        seen: set[UUID],
        held: parking.Blockers,
        result: BatchResult,
        retries: Retries,
    ) -> None:
        if isinstance(item, DeadLetter):
            await self._park(item, held, result, retries)
            return
        event = item.event
        assert isinstance(event, DailyDigestRequested)  # the loop hands over digests only
        if head := held.head(item.aggregate_id, item.where):
            letter = item.letter(self._group, "mailer", "").parked_behind(head)
            await self._park(letter, held, result, retries)
        elif event.event_id in seen:
            result.duplicates += 1
            log.info("duplicate digest skipped", extra={"event_id": str(event.event_id)})
        else:
            sent = await self._handle_digest(item, event, held, result, retries)
            if sent is not None:  # sent, or recorded unsent (its user unsubscribed since)
                result.handled += 1
                (metrics.EMAILS_SENT if sent else metrics.EMAILS_SKIPPED).inc()
            seen.add(event.event_id)

    async def _park(
        self, letter: DeadLetter, held: parking.Blockers, result: BatchResult, retries: Retries
    ) -> None:
        """Park durably (dead_letters; the loop then publishes it on events.dlq); RetryLaterError
        if that fails (it is retried with the rest of the batch)."""
        try:
            stored = await self._parking.park([letter])
        except Exception as e:
            retries.failed(e, "parking a digest")
            raise RetryLaterError from e
        held.add(letter.aggregate_id, letter.where)
        result.parked += stored

    @staticmethod
    def _log_batch(batch: Batch, result: BatchResult) -> None:
        done = len(batch.items) if result.done is None else result.done
        rewound = {i.where[:2] for i in batch.items[done:]}
        busy = result.handled or result.parked or result.duplicates or rewound
        log.log(
            logging.INFO if busy else logging.DEBUG,  # not one line per poll of task events
            "batch done",
            extra={
                "sent": result.handled,
                "duplicates": result.duplicates,
                "dead_lettered": len(result.parked),
                "ignored": batch.skipped,
                "rewound_partitions": len(rewound),
            },
        )

    # --- the digest handler ------------------------------------------------------------------

    async def _handle_digest(
        self,
        item: Delivered,
        event: DailyDigestRequested,
        held: parking.Blockers,
        result: BatchResult,
        retries: Retries,
    ) -> bool | None:
        """True once sent and recorded, False once recorded unsent (its user unsubscribed since),
        None once parked (POISON); RetryLaterError otherwise."""
        ids = {"event_id": str(event.event_id), "digest_id": str(event.digest_id)}
        try:
            sent = await self.deliver(event)
        except Exception as e:
            if classify(e) is not Kind.POISON:
                metrics.EMAILS_RETRIED.inc()
                log.warning("digest not sent yet", extra={**ids, "reason": describe(e)})
                retries.failed(e, "sending a digest")
                raise RetryLaterError from e
            await self._park(item.letter(self._group, "mailer", describe(e)), held, result, retries)
            metrics.EMAILS_FAILED.inc()
            return None
        retries.succeeded()
        if sent:
            log.info("digest sent", extra=ids)
        return sent

    async def replay(self, value: bytes | None) -> bool:
        """`dlq replay`: deliver a parked digest message the live way (mailer.delivery)."""
        return await self._delivery.replay(value)

    async def deliver(self, event: DailyDigestRequested) -> bool:
        """Compose, send and record one digest (also `dlq replay`'s way to send): True once
        sent, False if its user unsubscribed since; see mailer.delivery."""
        return await self._delivery.deliver(event)
