"""The mailer: Kafka consumer (group MAILER_GROUP_ID) of topic KAFKA_TOPIC, acting only on
`email.daily_digest.requested`.

Per polled batch:
1. decode; other event types are skipped from their `type` header without decoding; a digest
   message (or one of unknown type) that cannot be decoded is POISON (common.poison);
2. two queries: which digest event ids are already in processed_events (a redelivery → skipped)
   and which digests have messages parked in dead_letters (common.parking);
3. for each message, in order: poison, or a digest parked behind an earlier one, is parked and
   sent to events.dlq (one envelope for everyone, common.dead_letters); a new digest is rendered,
   sent on the reused SMTP connection, then its id INSERTed into processed_events (one round trip,
   so the unrecorded window is one email wide; mailer.delivery renders the next digest's email
   while this one waits on the network); a permanent refusal or an invalid recipient is
   POISON: parked, not recorded, so `python -m mailer dlq replay` can send it after a fix;
4. commit the batch's offsets, synchronously.

A TRANSIENT failure (SMTP after MAILER_SEND_ATTEMPTS, PostgreSQL, Kafka) stops the batch: what was
handled is committed, every partition is rewound to its first unhandled message, and the next poll
retries (backoff kept), forever. A BUG (any other exception) is retried the same way
CONSUMER_BUG_RETRIES times, then the mailer halts: no more messages, nothing more committed,
/ready answers 503 with the reason. Nothing is committed before its email is sent and recorded
or its message parked.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import KafkaException, TopicPartition

from common import metrics, parking, tracing
from common.dead_letters import DeadLetter
from common.events import DailyDigestRequested
from common.health import Heartbeat
from common.kafka import close_consumer, discard_consumer, is_fatal
from common.poison import BugBudget, HaltedError, Kind, classify, describe
from mailer.compose import DigestComposer
from mailer.delivery import Delivery
from mailer.incoming import Incoming
from mailer.ports import (
    BatchResult,
    Counters,
    DeadLetters,
    Parking,
    ProcessedStore,
    RetryLaterError,
    Sender,
    Work,
    decode,
    first_offsets,
)
from mailer.settings import MailerSettings
from mailer.smtp import sleep_unless
from mailer.subscriptions import Subscriptions

log = logging.getLogger(__name__)


class Mailer:
    def __init__(
        self,
        settings: MailerSettings,
        *,
        sender: Sender,
        processed: ProcessedStore,
        parking: Parking,
        dead_letters: DeadLetters,
        composer: DigestComposer,
        consumer_factory: Callable[[], Any] | None = None,
        topic: str = "events",
        group: str = "mailer",
        bug_retries: int = 5,
        stop_flag: threading.Event | None = None,
        subscriptions: Subscriptions | None = None,
    ) -> None:
        self._settings = settings
        self._subscriptions = subscriptions
        self._sender = sender
        self._processed = processed
        self._parking = parking
        self._dead_letters = dead_letters
        self._delivery = Delivery(settings, composer, sender, processed, subscriptions)
        self._consumer_factory = consumer_factory
        self._topic = topic
        self._group = group
        self._stop = stop_flag or threading.Event()
        self.counters = Counters()
        self.heartbeat = Heartbeat()
        metrics.register(*metrics.MAILER)
        self._budget = BugBudget(bug_retries, lambda reason: self.heartbeat.halt(reason))

    # --- lifecycle ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Thread- and signal-safe: finish the current message, commit what is done, exit."""
        self._stop.set()

    def run_forever(self) -> None:
        asyncio.run(self.run())

    async def run(self) -> None:
        if self._consumer_factory is None:
            raise RuntimeError("no Kafka consumer configured")
        consumer = self._consumer_factory()
        consumer.subscribe([self._topic])
        log.info("mailer started", extra={"topic": self._topic})
        try:
            while not self._stop.is_set():
                self.heartbeat.beat()
                raw = await asyncio.to_thread(
                    consumer.consume, self._settings.MAILER_BATCH_SIZE, 0.5
                )
                fatal = next((m.error() for m in raw if m.error() and is_fatal(m.error())), None)
                if fatal is not None:  # the batch is delivered again to the new consumer
                    await asyncio.to_thread(discard_consumer, consumer, fatal)
                    consumer = self._consumer_factory()
                    consumer.subscribe([self._topic])
                    continue
                messages = [Incoming.from_kafka(m) for m in raw if self._usable(m)]
                if messages:
                    await self._handle_polled(consumer, messages)
        except HaltedError:
            # Alive and not ready (reason on /ready) until an operator restarts us; nothing more
            # is committed, and leaving the group hands our partitions to the other members.
            await asyncio.to_thread(close_consumer, consumer)  # leaves the group first
            consumer = None
            await sleep_unless(float("inf"), self._stop.is_set)
        finally:
            if consumer is not None:
                await asyncio.to_thread(close_consumer, consumer)  # leaves the group first
            await self.close()
            log.info("mailer stopped", extra=vars(self.counters))

    async def close(self) -> None:
        await self._sender.close()
        await self._processed.close()
        await self._parking.close()
        self._dead_letters.close()
        if self._subscriptions is not None:
            await self._subscriptions.close()

    async def _handle_polled(self, consumer: Any, messages: list[Incoming]) -> None:
        result = await self.process_batch(messages)
        if result.sent or result.dead_lettered:
            await self._delivery.fault("before_commit")
        if result.commit:
            offsets = [TopicPartition(t, p, o) for (t, p), o in result.commit.items()]
            try:
                await asyncio.to_thread(consumer.commit, offsets=offsets, asynchronous=False)
            except KafkaException as e:
                # E.g. a rebalance took the partition away: whoever gets it skips what we
                # recorded in processed_events and dead_letters, so this is harmless.
                log.warning("offset commit failed", extra={"error": str(e)})
            metrics.observe_consumer(
                "mailer",
                result.commit,
                result.last_events,
                lambda t, p: metrics.high_watermark(consumer, t, p),
            )
        for (topic, partition), offset in result.rewind.items():
            try:
                consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as e:
                log.warning("rewind failed", extra={"error": str(e), "partition": partition})
        if result.rewind:
            await sleep_unless(self._settings.MAILER_RETRY_INITIAL_SECONDS, self._stop.is_set)
        busy = result.sent or result.dead_lettered or result.duplicates or result.rewind
        log.log(
            logging.INFO if busy else logging.DEBUG,  # not one line per poll of task events
            "batch done",
            extra={
                "sent": result.sent,
                "duplicates": result.duplicates,
                "dead_lettered": result.dead_lettered,
                "ignored": result.ignored,
                "rewound_partitions": len(result.rewind),
            },
        )

    @staticmethod
    def _usable(message: Any) -> bool:
        if message.error() is None:
            return True
        log.warning("consumer error", extra={"error": str(message.error())})
        return False

    # --- one polled batch --------------------------------------------------------------------

    async def process_batch(self, batch: Sequence[Incoming]) -> BatchResult:
        """Handle a polled batch in order. Pure of Kafka: the caller commits/rewinds. Raises
        HaltedError once a bug has outlasted its retries."""
        result = BatchResult()
        work = [decode(message) for message in batch]
        try:
            seen = await self._processed.seen([w.event.event_id for w in work if w.event])
            held = await self._parking.blockers([w.aggregate_id for w in work if w.aggregate_id])
        except Exception as e:
            self._failed(e, "checking processed and parked digests")
            result.rewind = first_offsets(batch)
            return result
        trace_token = tracing.set_current(None)
        self._delivery.plan([w.event for w in work if w.event and w.event.event_id not in seen])
        for index, item in enumerate(work):
            message = item.message
            # Each message's log lines carry the trace of the command/batch behind it.
            tracing.set_current(
                tracing.continue_or_start(tracing.from_kafka_headers(message.headers))
            )
            try:
                if not item.ours:
                    result.ignored += 1
                elif item.poison is not None:
                    await self._park(item.letter(self._group, f"undecodable: {item.poison}"), held)
                    result.dead_lettered += 1
                elif head := held.head(item.aggregate_id, message.where):
                    await self._park(item.letter(self._group, "").parked_behind(head), held)
                    result.dead_lettered += 1
                elif item.event is not None and item.event.event_id in seen:
                    result.duplicates += 1
                    log.info(
                        "duplicate digest skipped", extra={"event_id": str(item.event.event_id)}
                    )
                elif item.event is not None:
                    if await self._handle_digest(item, held):
                        result.sent += 1
                        metrics.EMAILS_SENT.inc()
                    else:
                        result.dead_lettered += 1
                    seen.add(item.event.event_id)
                if item.event is not None:
                    result.last_events.append(
                        (
                            (message.topic, message.partition),
                            item.event.position,
                            item.event.occurred_at,
                        )
                    )
            except RetryLaterError:
                result.rewind = first_offsets(batch[index:])
                break
            result.commit[(message.topic, message.partition)] = message.offset + 1
        tracing.reset_current(trace_token)
        self._delivery.plan([])
        self.counters.batches += 1
        self.counters.sent += result.sent
        self.counters.duplicates += result.duplicates
        self.counters.dead_lettered += result.dead_lettered
        self.counters.ignored += result.ignored
        return result

    async def _park(self, letter: DeadLetter, held: parking.Blockers) -> None:
        """Park durably (dead_letters), then publish to events.dlq; RetryLaterError if either
        fails (it is retried with the batch)."""
        try:
            stored = await self._parking.park([letter])
            await asyncio.to_thread(self._dead_letters.send, stored)
        except Exception as e:
            self._failed(e, "parking a digest")
            raise RetryLaterError from e
        held.add(letter.aggregate_id, letter.where)
        metrics.count_dead_letters("mailer", ((s.kind.value, s.reason) for s in stored))
        log.warning(
            "digest message parked",
            extra={"offset": letter.offset, "kind": letter.kind.value, "reason": letter.reason},
        )

    def _failed(self, e: Exception, what: str) -> None:
        """The policy for a failure that is not the message's fault: TRANSIENT is logged (the
        batch is rewound and retried); a BUG spends the budget (HaltedError once spent)."""
        if classify(e) is Kind.BUG:
            self._budget.failed(e, what)
        else:
            log.warning(f"{what} failed; will retry", extra={"error": describe(e)})

    # --- the digest handler ------------------------------------------------------------------

    async def _handle_digest(self, item: Work, held: parking.Blockers) -> bool:
        """True once sent and recorded; False once parked (POISON); RetryLaterError otherwise."""
        assert item.event is not None
        ids = {"event_id": str(item.event.event_id), "digest_id": str(item.event.digest_id)}
        try:
            await self.deliver(item.event)
        except Exception as e:
            if classify(e) is not Kind.POISON:
                metrics.EMAILS_RETRIED.inc()
                log.warning("digest not sent yet", extra={**ids, "reason": describe(e)})
                self._failed(e, "sending a digest")
                raise RetryLaterError from e
            await self._park(item.letter(self._group, describe(e)), held)
            metrics.EMAILS_FAILED.inc()
            return False
        self._budget.succeeded()
        log.info("digest sent", extra=ids)
        return True

    async def replay(self, value: bytes | None) -> bool:
        """`dlq replay`: deliver a parked digest message the live way (mailer.delivery)."""
        return await self._delivery.replay(value)

    async def deliver(self, event: DailyDigestRequested) -> None:
        """Compose, send and record one digest (also `dlq replay`'s way to send); see
        mailer.delivery."""
        await self._delivery.deliver(event)
