"""The mailer: Kafka consumer (group MAILER_GROUP_ID) of topic KAFKA_TOPIC, acting only on
`email.daily_digest.requested`.

Per polled batch:
1. decode; other event types are skipped from their `type` header without decoding; undecodable
   messages are skipped with a warning (dead-lettering them is the projector's job);
2. ONE query: which digest event ids are already in processed_events (a redelivery) → skipped;
3. for each new digest, in order: render, send on the reused SMTP connection, then INSERT its id
   into processed_events (one round trip, so the unrecorded window is one email wide);
   a permanent refusal goes to the dead-letter topic and is recorded as processed too;
4. commit the batch's offsets, synchronously.

A transient SMTP failure that outlasts MAILER_SEND_ATTEMPTS stops the batch: what was handled is
committed, every partition is rewound to its first unhandled message, and the next poll retries
(backoff kept), forever. Nothing is committed before its email is sent and recorded.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from email.message import Message
from enum import Enum
from typing import Any, Protocol
from uuid import UUID

from confluent_kafka import Consumer, KafkaException, TopicPartition
from pydantic import ValidationError

from common.events import DailyDigestRequested, PublicEvent, decode_event
from common.health import Heartbeat
from common.kafka import close_consumer, consumer_config
from common.settings import DatabaseSettings, KafkaSettings
from mailer.compose import DigestComposer, InvalidRecipientError
from mailer.dead_letters import KafkaDeadLetters
from mailer.incoming import Incoming
from mailer.processed import ProcessedEvents
from mailer.settings import FaultPoint, MailerSettings
from mailer.smtp import Permanent, SendOutcome, SmtpSender, Transient, sleep_unless

log = logging.getLogger(__name__)

DIGEST_TYPE = "email.daily_digest.requested"
TopicPartitionKey = tuple[str, int]


class Sender(Protocol):
    async def send(self, message: Message) -> SendOutcome: ...

    async def close(self) -> None: ...


class ProcessedStore(Protocol):
    async def seen(self, event_ids: Sequence[UUID]) -> set[UUID]: ...

    async def record(self, event_id: UUID) -> None: ...

    async def close(self) -> None: ...


class DeadLetters(Protocol):
    async def send(self, message: Incoming, reason: str, code: int | None) -> None: ...

    def close(self) -> None: ...


class Handled(Enum):
    SENT = "sent"
    DEAD_LETTERED = "dead_lettered"
    RETRY = "retry"  # not finished with: keep it (rewind, do not commit)


Handler = Callable[[Incoming, Any], Awaitable[Handled]]


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


class Mailer:
    def __init__(
        self,
        settings: MailerSettings,
        *,
        sender: Sender,
        processed: ProcessedStore,
        dead_letters: DeadLetters,
        composer: DigestComposer,
        consumer_factory: Callable[[], Any] | None = None,
        topic: str = "events",
        stop_flag: threading.Event | None = None,
    ) -> None:
        self._settings = settings
        self._sender = sender
        self._processed = processed
        self._dead_letters = dead_letters
        self._composer = composer
        self._consumer_factory = consumer_factory
        self._topic = topic
        self._stop = stop_flag or threading.Event()
        self.counters = Counters()
        self.heartbeat = Heartbeat()
        # The type → handler map: everything else on the topic is not the mailer's business.
        self._handlers: dict[str, Handler] = {DIGEST_TYPE: self._handle_digest}

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
                messages = [Incoming.from_kafka(m) for m in raw if self._usable(m)]
                if messages:
                    await self._handle_polled(consumer, messages)
        finally:
            await asyncio.to_thread(close_consumer, consumer)  # leaves the group first
            await self._sender.close()
            await self._processed.close()
            self._dead_letters.close()
            log.info("mailer stopped", extra=vars(self.counters))

    async def _handle_polled(self, consumer: Any, messages: list[Incoming]) -> None:
        result = await self.process_batch(messages)
        if result.sent or result.dead_lettered:
            await self._fault("before_commit")
        if result.commit:
            offsets = [TopicPartition(t, p, o) for (t, p), o in result.commit.items()]
            try:
                await asyncio.to_thread(consumer.commit, offsets=offsets, asynchronous=False)
            except KafkaException as e:
                # E.g. a rebalance took the partition away: whoever gets it skips what we
                # recorded in processed_events, so this is harmless.
                log.warning("offset commit failed", extra={"error": str(e)})
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
        """Handle a polled batch in order. Pure of Kafka: the caller commits/rewinds."""
        result = BatchResult()
        work: list[tuple[Incoming, PublicEvent | None, Handler | None]] = []
        for message in batch:
            event = self._decode(message)
            handler = self._handlers.get(event.type) if event is not None else None
            work.append((message, event, handler))
        try:
            seen = await self._processed.seen(
                [e.event_id for _, e, h in work if h is not None and e is not None]
            )
        except Exception:
            log.exception("could not check processed events; will retry the batch")
            result.rewind = _first_offsets(batch)
            return result
        for index, (message, event, handler) in enumerate(work):
            if handler is None or event is None:
                result.ignored += 1
            elif event.event_id in seen:
                result.duplicates += 1
                log.info("duplicate digest skipped", extra={"event_id": str(event.event_id)})
            else:
                try:
                    handled = await handler(message, event)
                except Exception:
                    log.exception(
                        "digest handling failed; will retry",
                        extra={"event_id": str(event.event_id)},
                    )
                    handled = Handled.RETRY
                if handled is Handled.RETRY:
                    result.rewind = _first_offsets(batch[index:])
                    break
                if handled is Handled.SENT:
                    result.sent += 1
                else:
                    result.dead_lettered += 1
                seen.add(event.event_id)
            result.commit[(message.topic, message.partition)] = message.offset + 1
        self.counters.batches += 1
        self.counters.sent += result.sent
        self.counters.duplicates += result.duplicates
        self.counters.dead_lettered += result.dead_lettered
        self.counters.ignored += result.ignored
        return result

    def _decode(self, message: Incoming) -> PublicEvent | None:
        declared = message.header("type")
        if declared is not None and declared not in self._handlers:
            return None  # not ours: no need to parse it
        if message.value is None:
            return None
        try:
            return decode_event(message.value)
        except (ValidationError, ValueError) as e:
            log.warning(
                "undecodable message skipped",
                extra={
                    "topic": message.topic,
                    "partition": message.partition,
                    "offset": message.offset,
                    "error": str(e)[:500],
                },
            )
            return None

    # --- the digest handler ------------------------------------------------------------------

    async def _handle_digest(self, message: Incoming, event: DailyDigestRequested) -> Handled:
        """Sent or dead-lettered, and recorded; or RETRY (nothing recorded) on transient trouble."""
        outcome: SendOutcome
        try:
            email = self._composer.compose(event)
        except InvalidRecipientError as e:
            outcome = Permanent(f"invalid recipient address: {e}")
        else:
            outcome = await self._sender.send(email)
        ids = {"event_id": str(event.event_id), "digest_id": str(event.digest_id)}
        if isinstance(outcome, Transient):
            log.warning("digest not sent yet", extra={**ids, "reason": outcome.reason})
            return Handled.RETRY
        if isinstance(outcome, Permanent):
            await self._dead_letters.send(message, outcome.reason, outcome.code)
            log.warning(
                "digest refused permanently; dead-lettered",
                extra={**ids, "reason": outcome.reason, "code": outcome.code},
            )
            handled = Handled.DEAD_LETTERED
        else:
            log.debug("digest sent", extra=ids)
            await self._fault("after_send")
            handled = Handled.SENT
        await self._processed.record(event.event_id)
        return handled

    async def _fault(self, point: FaultPoint) -> None:
        """TEST-ONLY (MAILER_FAULT_PAUSE): freeze here so a test can SIGKILL the process."""
        if point != self._settings.MAILER_FAULT_PAUSE:
            return
        log.warning("fault injection: paused", extra={"fault_point": point})
        sys.stderr.flush()
        await asyncio.Event().wait()  # forever


def _first_offsets(messages: Sequence[Incoming]) -> dict[TopicPartitionKey, int]:
    first: dict[TopicPartitionKey, int] = {}
    for m in messages:
        first.setdefault((m.topic, m.partition), m.offset)
    return first


def build_mailer(
    settings: MailerSettings,
    db: DatabaseSettings,
    kafka: KafkaSettings,
    stop_flag: threading.Event | None = None,
) -> Mailer:
    stop = stop_flag or threading.Event()
    overrides: dict[str, Any] = {}
    if settings.MAILER_INSTANCE_ID:
        overrides["group.instance.id"] = settings.MAILER_INSTANCE_ID

    def consumer() -> Consumer:
        return Consumer(consumer_config(kafka, settings.MAILER_GROUP_ID, **overrides))

    return Mailer(
        settings,
        sender=SmtpSender(settings, stop.is_set),
        processed=ProcessedEvents(db.conninfo, stop.is_set),
        dead_letters=KafkaDeadLetters(kafka),
        composer=DigestComposer(settings),
        consumer_factory=consumer,
        topic=kafka.KAFKA_TOPIC,
        stop_flag=stop,
    )
