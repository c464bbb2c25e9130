"""The consumer loop (plumbing): poll a batch, decode, apply in one transaction, dead-letter what
cannot be parsed or applied, and only then commit the Kafka offsets.

Failure rules:
- A message that is not a valid public event, or an event the handlers/database refuse (data
  errors), goes to the dead-letter topic with the reason in its headers; the loop carries on.
- Anything else from the database (connection lost, deadlock, missing table...) is transient: the
  same batch is retried with backoff, forever, and nothing is committed meanwhile. A crash at any
  point re-delivers the uncommitted batch, which the version checks turn into no-ops.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import psycopg
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition
from pydantic import ValidationError

from common.events import decode_event
from common.health import Heartbeat
from common.kafka import close_consumer, consumer_config, producer_config
from common.settings import KafkaSettings
from projector.sink import BatchResult, Delivered

log = logging.getLogger(__name__)

_MAX_REASON = 1000


class Message(Protocol):
    """The part of confluent_kafka.Message the loop uses (fakes implement just this)."""

    def value(self) -> bytes | None: ...
    def key(self) -> bytes | None: ...
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...


def where(message: Message) -> tuple[str, int, int]:
    """(topic, partition, offset): always set on a message consumed without error."""
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    assert topic is not None and partition is not None and offset is not None
    return topic, partition, offset


class MessageSource(Protocol):
    def poll(self, max_messages: int, timeout: float) -> Sequence[Message]:
        """Up to max_messages, waiting at most `timeout` for the first one."""

    def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        """Commit, synchronously, the next offset to read per (topic, partition)."""

    def close(self) -> None: ...


class Projection(Protocol):
    def apply(self, batch: Sequence[Delivered]) -> BatchResult:
        """Apply all, atomically, or raise."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class DeadLetter:
    value: bytes | None
    key: bytes | None
    topic: str
    partition: int
    offset: int
    reason: str


class DeadLetterSink(Protocol):
    def send(self, letters: Sequence[DeadLetter]) -> None:
        """Durable when it returns; raises DeadLetterError otherwise."""

    def close(self) -> None: ...


class DeadLetterError(Exception):
    pass


class StopRequestedError(Exception):
    """stop() was called while waiting to retry."""


def is_transient(exc: BaseException) -> bool:
    """Worth retrying the same batch? Data errors are the message's fault, not the database's."""
    if isinstance(exc, DeadLetterError):
        return True
    if isinstance(exc, psycopg.DataError | psycopg.IntegrityError):
        return False
    return isinstance(exc, psycopg.Error)


def dead_letter(message: Message, reason: str) -> DeadLetter:
    topic, partition, offset = where(message)
    return DeadLetter(
        value=message.value(),
        key=message.key(),
        topic=topic,
        partition=partition,
        offset=offset,
        reason=reason[:_MAX_REASON],
    )


@dataclass
class Counters:
    messages: int = 0
    applied: int = 0
    duplicates: int = 0
    gaps: int = 0
    dead_letters: int = 0
    batches: int = 0


class Projector:
    def __init__(
        self,
        source: MessageSource,
        projection: Projection,
        dead_letters: DeadLetterSink,
        *,
        batch_size: int = 500,
        poll_timeout: float = 0.5,
        max_backoff: float = 5.0,
        heartbeat: Heartbeat | None = None,
    ) -> None:
        self._source = source
        self.heartbeat = heartbeat or Heartbeat()
        self._projection = projection
        self._dead_letters = dead_letters
        self._batch_size = batch_size
        self._poll_timeout = poll_timeout
        self._max_backoff = max_backoff
        self._stop = threading.Event()
        self.counters = Counters()

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        log.info("projector started")
        try:
            while not self._stop.is_set():
                self.step()
        except StopRequestedError:
            pass
        finally:
            log.info("projector stopped", extra={"counters": vars(self.counters)})

    def step(self) -> int:
        """Handle one polled batch end to end; returns how many messages it handled."""
        self.heartbeat.beat()
        messages = self._source.poll(self._batch_size, self._poll_timeout)
        if not messages:
            return 0
        decoded: list[tuple[Message, Delivered]] = []
        dead: list[DeadLetter] = []
        for m in messages:
            try:
                event = decode_event(m.value() or b"")
            except ValidationError as e:
                dead.append(dead_letter(m, f"undecodable: {_first_error(e)}"))
            else:
                decoded.append((m, Delivered(event, *where(m))))
        if decoded:
            dead += self._apply(decoded)
        if dead:
            self._retry(lambda: self._dead_letters.send(dead), "dead-letter send")
            for letter in dead:
                log.warning(
                    "message dead-lettered",
                    extra={
                        "topic": letter.topic,
                        "partition": letter.partition,
                        "offset": letter.offset,
                        "reason": letter.reason,
                    },
                )
        self._source.commit(_next_offsets(messages))
        self.counters.messages += len(messages)
        self.counters.dead_letters += len(dead)
        self.counters.batches += 1
        return len(messages)

    def _apply(self, decoded: Sequence[tuple[Message, Delivered]]) -> list[DeadLetter]:
        batch = [d for _, d in decoded]
        try:
            self._record(self._retry(lambda: self._projection.apply(batch), "apply"))
            return []
        except StopRequestedError:
            raise
        except Exception as e:
            if len(batch) == 1:
                return [dead_letter(decoded[0][0], f"unappliable: {_describe(e)}")]
            log.warning("batch refused; applying its events one by one", extra={"error": str(e)})
        dead: list[DeadLetter] = []
        for message, delivered in decoded:
            try:
                self._record(self._apply_one(delivered))
            except StopRequestedError:
                raise
            except Exception as e:
                dead.append(dead_letter(message, f"unappliable: {_describe(e)}"))
        return dead

    def _apply_one(self, delivered: Delivered) -> BatchResult:
        return self._retry(lambda: self._projection.apply([delivered]), "apply")

    def _record(self, result: BatchResult) -> None:
        self.counters.applied += result.applied
        self.counters.duplicates += result.duplicates
        self.counters.gaps += result.gaps

    def _retry[T](self, action: Callable[[], T], what: str) -> T:
        backoff = 0.1
        while True:
            try:
                return action()
            except Exception as e:
                if not is_transient(e):
                    raise
                log.warning(f"{what} failed, retrying", extra={"error": str(e)})
            if self._stop.wait(backoff):
                raise StopRequestedError
            backoff = min(backoff * 2, self._max_backoff)

    def close(self) -> None:
        for part in (self._source, self._projection, self._dead_letters):
            try:
                part.close()
            except Exception:
                log.exception("error while closing", extra={"part": type(part).__name__})


def _next_offsets(messages: Sequence[Message]) -> dict[tuple[str, int], int]:
    offsets: dict[tuple[str, int], int] = {}
    for m in messages:
        topic, partition, offset = where(m)
        offsets[topic, partition] = max(offsets.get((topic, partition), 0), offset + 1)
    return offsets


def _first_error(e: ValidationError) -> str:
    errors = e.errors()
    if not errors:
        return str(e)
    first = errors[0]
    where = ".".join(str(p) for p in first.get("loc", ())) or "message"
    return f"{where}: {first.get('msg', '')} ({e.error_count()} error(s))"


def _describe(e: BaseException) -> str:
    return f"{type(e).__name__}: {e}"


# --- Kafka adapters ----------------------------------------------------------------------------


class KafkaSource:
    def __init__(self, settings: KafkaSettings, group_id: str, **overrides: Any) -> None:
        self._consumer = Consumer(consumer_config(settings, group_id, **overrides))
        self._consumer.subscribe(
            [settings.KAFKA_TOPIC], on_assign=self._on_assign, on_revoke=self._on_revoke
        )

    @staticmethod
    def _on_assign(_consumer: Any, partitions: list[TopicPartition]) -> None:
        log.info("partitions assigned", extra={"partitions": [p.partition for p in partitions]})

    @staticmethod
    def _on_revoke(_consumer: Any, partitions: list[TopicPartition]) -> None:
        log.info("partitions revoked", extra={"partitions": [p.partition for p in partitions]})

    def poll(self, max_messages: int, timeout: float) -> Sequence[Message]:
        # Wait for the first message only, then take whatever else is already fetched: low latency
        # when traffic is light, big batches when it is heavy.
        messages = list(self._consumer.consume(1, timeout))
        if messages and max_messages > 1:
            messages += self._consumer.consume(max_messages - 1, 0)
        ok: list[Message] = []
        for m in messages:
            err = m.error()
            if err is None:
                ok.append(m)
            elif err.code() != KafkaError._PARTITION_EOF:
                if err.fatal():
                    raise KafkaException(err)
                log.warning("consumer error", extra={"error": str(err)})
        return ok

    def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        partitions = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        try:
            self._consumer.commit(offsets=partitions, asynchronous=False)
        except KafkaException as e:
            # Typically a rebalance took the partition away: its new owner re-reads the messages
            # and the version checks skip them. Nothing is lost.
            log.warning("offset commit failed", extra={"error": str(e)})

    def close(self) -> None:
        close_consumer(self._consumer)  # leaves the group: no idle partitions after a stop


class KafkaDeadLetters:
    def __init__(self, settings: KafkaSettings, **overrides: Any) -> None:
        self._topic = settings.KAFKA_DLQ_TOPIC
        self._producer = Producer(producer_config(settings, **overrides))

    def send(self, letters: Sequence[DeadLetter]) -> None:
        errors: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, _msg: Any) -> None:
            if err is not None:
                errors.append(err)

        failed_at = datetime.now(UTC).isoformat()
        for letter in letters:
            self._producer.produce(
                self._topic,
                key=letter.key,
                value=letter.value,
                headers=[
                    ("reason", letter.reason.encode()),
                    ("original_topic", letter.topic.encode()),
                    ("original_partition", str(letter.partition).encode()),
                    ("original_offset", str(letter.offset).encode()),
                    ("failed_at", failed_at.encode()),
                ],
                on_delivery=on_delivery,
            )
        remaining = self._producer.flush(30)
        if remaining or errors:
            raise DeadLetterError(f"{remaining} undelivered, {len(errors)} failed: {errors[:1]}")

    def close(self) -> None:
        self._producer.flush(5)
