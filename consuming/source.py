"""A consumer's Kafka side: what a consumed message looks like to the loop, and the source."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from runtime import metrics
from runtime.kafka import (
    MEMBERSHIP_CHECK_INTERVAL_SECONDS,
    REJOIN_DEADLINE_SECONDS,
    abandon_consumer,
    close_consumer,
    consumer_config,
    discard_consumer,
    is_fatal,
    topic_has_partitions,
)
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
    """The one Kafka consumer of a projector or mailer process, kept alive: a consumer that hit a
    fatal error, or that stays outside its group for `rejoin_deadline` seconds while the cluster
    answers (runtime/kafka.py, "A member that never re-joins"), is replaced by a new one."""

    def __init__(
        self,
        settings: KafkaSettings,
        group_id: str,
        *,
        consumer_factory: Callable[[dict[str, Any]], Any] = Consumer,
        rejoin_deadline: float = REJOIN_DEADLINE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        **overrides: Any,
    ) -> None:
        self._settings = settings
        self._group_id = group_id
        self._overrides = {"on_commit": self._on_commit, **overrides}
        self._consumer_factory = consumer_factory
        self._rejoin_deadline = rejoin_deadline
        self._clock = clock
        # Offsets handed to commit() but not sent yet (see commit()), and when the next send may go.
        self._commit_interval = settings.KAFKA_OFFSET_COMMIT_INTERVAL_SECONDS
        self._pending: dict[tuple[str, int], int] = {}
        self._next_commit_at = 0.0
        self._outside_since: float | None = None
        self._next_membership_check = 0.0
        self._consumer: Any = None
        self._consumer = self._connect()

    def _connect(self) -> Any:
        # A fresh config each time: a replacement gets its own group.instance.id, so the failed
        # consumer's lingering membership cannot fence it.
        consumer = self._consumer_factory(
            consumer_config(self._settings, self._group_id, **self._overrides)
        )
        # Outside the group until the first assignment; an empty one counts (the group is then
        # complete without work for us, e.g. more members than partitions).
        self._outside_since = self._clock()
        consumer.subscribe(
            [self._settings.KAFKA_TOPIC], on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        return consumer

    def _on_assign(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        if consumer is not self._consumer:
            return  # a replaced consumer, closing on its own thread
        self._outside_since = None
        log.info("partitions assigned", extra={"partitions": [p.partition for p in partitions]})

    def _on_revoke(self, consumer: Any, partitions: list[TopicPartition]) -> None:
        if consumer is not self._consumer:
            return
        # Eager rebalancing: a revoke (or a lost session) is always followed by an assignment
        # once the member is back in a complete group.
        if self._outside_since is None:
            self._outside_since = self._clock()
        # The offsets held back for these partitions go out before their new owner starts, so it
        # does not re-read (harmlessly) what we already applied.
        self._send_pending()
        log.info("partitions revoked", extra={"partitions": [p.partition for p in partitions]})

    def poll(self, max_messages: int, timeout: float) -> Sequence[Message]:
        self._replace_if_stuck_outside_the_group()
        if self._pending:
            # Held-back offsets go out once due even when no message follows them: wait no
            # longer than that for the first message.
            due_in = self._next_commit_at - self._clock()
            if due_in <= 0:
                self._send_pending()
            else:
                timeout = min(timeout, due_in)
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
                self._replace("fatal")
                return []
            elif err.code() != KafkaError._PARTITION_EOF:
                log.warning("consumer error", extra={"error": str(err)})
        return ok

    def _replace_if_stuck_outside_the_group(self) -> None:
        """The backstop for a member that never re-joins (runtime/kafka.py): only while the
        cluster answers with the topic's partitions, so a broker outage alone never triggers it."""
        now = self._clock()
        since = self._outside_since
        if since is None or now - since < self._rejoin_deadline:
            return
        if now < self._next_membership_check:
            return
        self._next_membership_check = now + MEMBERSHIP_CHECK_INTERVAL_SECONDS
        if not topic_has_partitions(self._consumer, self._settings.KAFKA_TOPIC):
            return
        log.error(
            "consumer stayed outside its group while the cluster answers; creating a new one",
            extra={"seconds": round(now - since, 1), "group": self._group_id},
        )
        stuck = self._consumer
        self._replace("outside_group")
        abandon_consumer(stuck)

    def _replace(self, reason: str) -> None:
        # The old member's held-back offsets are dropped: its partitions may go to another
        # member, and what they covered is only delivered again, which the consumers skip.
        self._pending.clear()
        self._consumer = self._connect()
        metrics.count_consumer_replaced(self._group_id, reason)

    def commit(self, offsets: Mapping[tuple[str, int], int]) -> None:
        # At most one commit request per KAFKA_OFFSET_COMMIT_INTERVAL_SECONDS: under load a batch
        # is a few events, and a commit per batch was a broker request (broker and client CPU on
        # the freshness path) per few events. Offsets that arrive sooner are held back and go out
        # with the next commit, from poll() once due, on a revoke, or on close. Safe: what they
        # cover is already durable, and a crash re-delivers at most the interval's batches, which
        # the consumers' idempotence skips (docs/read-side.md "Freshness").
        self._pending.update(offsets)
        if self._clock() >= self._next_commit_at:
            self._send_pending()

    def _send_pending(self) -> None:
        if not self._pending:
            return
        partitions = [TopicPartition(t, p, o) for (t, p), o in self._pending.items()]
        self._pending.clear()
        self._next_commit_at = self._clock() + self._commit_interval
        # Asynchronous, for every consumer. Waiting for the broker's answer held every next batch
        # back (a round trip, 5-30 ms under load; docs/read-side.md "Freshness"), and a commit in
        # flight when the coordinator went away blocked the loop for the whole outage: librdkafka
        # retries it until the broker is back and a synchronous commit has no timeout, so no poll
        # served the rebalance (runtime/kafka.py). Safe: the batch's effects are already durable
        # (read tables, processed_events), commits go out in order, a later commit covers a failed
        # one, close() waits for those in flight, and a batch whose commit is lost is re-delivered
        # and skipped by the consumers' idempotence.
        try:
            self._consumer.commit(offsets=partitions, asynchronous=True)
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
        return metrics.high_watermark(self._consumer, topic, partition)

    def close(self) -> None:
        self._send_pending()
        close_consumer(self._consumer)  # leaves the group: no idle partitions after a stop
