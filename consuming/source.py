"""A consumer's Kafka side: what a consumed message looks like to the loop, and the source."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from runtime.kafka import close_consumer, consumer_config, discard_consumer, is_fatal
from runtime.metrics import high_watermark
from runtime.settings import KafkaSettings

log = logging.getLogger(__name__)


class Message(Protocol):
    """The part of confluent_kafka.Message the loop uses (fakes implement just this)."""

    def value(self) -> bytes | None: ...
    def key(self) -> bytes | None: ...
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def headers(self) -> Any: ...


def where(message: Message) -> tuple[str, int, int]:
    """(topic, partition, offset): always set on a message consumed without error."""
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    assert topic is not None and partition is not None and offset is not None
    return topic, partition, offset


class MessageSource(Protocol):
    def poll(self, max_messages: int, timeout: float) -> Sequence[Message]:
        """Up to max_messages, waiting at most `timeout` for the first one."""

    def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        """Commit the next offset to read per (topic, partition); called only once the batch's
        effects are durable, so a commit that is lost only means re-delivering that batch."""

    def seek(self, offsets: Mapping[tuple[str, int], int]) -> None:
        """Read these partitions again from these offsets (a batch handled only in part)."""

    def close(self) -> None: ...


class KafkaSource:
    """`commit_asynchronously`: the projector's commits do not wait for the broker (its batch is
    already durable in PostgreSQL, see commit()); the mailer's wait, as they always have."""

    def __init__(
        self,
        settings: KafkaSettings,
        group_id: str,
        *,
        commit_asynchronously: bool = True,
        consumer_factory: Callable[[dict[str, Any]], Any] = Consumer,
        **overrides: Any,
    ) -> None:
        self._asynchronous = commit_asynchronously
        self._settings = settings
        self._group_id = group_id
        self._overrides = {"on_commit": self._on_commit, **overrides}
        self._consumer_factory = consumer_factory
        self._consumer = self._connect()

    def _connect(self) -> Any:
        # A fresh config each time: a replacement gets its own group.instance.id, so the failed
        # consumer's lingering membership cannot fence it.
        consumer = self._consumer_factory(
            consumer_config(self._settings, self._group_id, **self._overrides)
        )
        consumer.subscribe(
            [self._settings.KAFKA_TOPIC], on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        return consumer

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
            elif is_fatal(err):
                # The batch is dropped, uncommitted: the new consumer is delivered it again.
                discard_consumer(self._consumer, err)
                self._consumer = self._connect()
                return []
            elif err.code() != KafkaError._PARTITION_EOF:
                log.warning("consumer error", extra={"error": str(err)})
        return ok

    def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        # Asynchronous: waiting for the broker's answer (a round trip, 5-30 ms under load) held
        # every next batch back, and freshness with it (docs/read-side.md "Freshness"). Safe: the
        # batch is already committed in PostgreSQL, commits go out in order, a later commit covers
        # a failed one, close() waits for those in flight, and a batch whose commit is lost is
        # re-delivered and skipped by the version checks.
        partitions = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
        try:
            self._consumer.commit(offsets=partitions, asynchronous=self._asynchronous)
        except KafkaException as e:
            # E.g. a rebalance took the partition away: whoever gets it skips what is already
            # durable (read tables, processed_events, dead_letters), so this is harmless.
            log.warning("offset commit failed", extra={"error": str(e)})

    def seek(self, offsets: Mapping[tuple[str, int], int]) -> None:
        for (topic, partition), offset in offsets.items():
            try:
                self._consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as e:
                log.warning("rewind failed", extra={"error": str(e), "partition": partition})

    @staticmethod
    def _on_commit(err: KafkaError | None, _partitions: list[TopicPartition]) -> None:
        # Typically a rebalance took the partition away: its new owner re-reads the messages and
        # the version checks skip them. Nothing is lost.
        if err is not None and err.code() != KafkaError._NO_OFFSET:
            log.warning("offset commit failed", extra={"error": str(err)})

    def high_watermark(self, topic: str, partition: int) -> int | None:
        """The partition's end offset as of the last fetch (cached: no broker round trip)."""
        return high_watermark(self._consumer, topic, partition)

    def close(self) -> None:
        close_consumer(self._consumer)  # leaves the group: no idle partitions after a stop
