"""Kafka client configuration, defined once for every producer and consumer.

Recovery after a broker outage (measured on a private broker, 3 partitions, 30 s outage, see
tests/integration/test_kafka_outage_recovery.py and docs/runbooks/chaos.md):

- A group member that cannot heartbeat for `session.timeout.ms` declares its session lost *on the
  client side*, forgets its member id and re-joins as a new member once the broker is back. The
  restarted coordinator, however, reloads the group with the old member in it and holds the
  rebalance until that phantom's session expires: every partition stalls one more session timeout
  (10 s for the projector) after the broker's return, the mailer (librdkafka's default 45 s
  session) even longer. Static membership (`group.instance.id`) removes the wait: a member that
  re-joins under its instance id replaces its phantom at once (KIP-345). The id here is unique per
  consumer instance, so two processes can never fence each other.
- Static members do not send LeaveGroup when they are closed (KIP-345), so a stopped consumer
  would also hold its partitions for a session timeout: `close_consumer` unsubscribes first (that
  path does leave), which keeps graceful restarts and scale-downs immediate.
- librdkafka backs off reconnects exponentially up to `reconnect.backoff.max.ms` (default 10 s,
  plus jitter): after a long outage a client could sit out up to ~15 s before even trying the
  returned broker. 1 s caps that, at the cost of one refused connection a second while it is down.
- When a static member's group coordinator dies (one broker of three SIGKILLed), its session times
  out, it re-joins under a new member id, and an offset commit still in flight under the old one is
  answered FENCED_INSTANCE_ID, which librdkafka makes fatal: that consumer never delivers again.
  It arrives as an error event of code `_FATAL` whose own `fatal()` is False, so `is_fatal` checks
  both, and every consumer replaces a fatal consumer with a new one (`discard_consumer`); nothing
  is lost, the uncommitted messages are delivered again and the consumers are idempotent.
- A member that never re-joins (a rare flake of the outage test, the mailer's): an offset commit
  in flight when the coordinator goes away is retried by librdkafka until the broker is back, and
  a synchronous commit (the mailer's) waits for it with no timeout: a probe's loop sat in one for
  the whole outage (21-43 s), polling nothing, so the lost session's revoke went unserved and the
  loop's heartbeat stale. Every consumer now commits asynchronously (consuming/source.py).
  librdkafka also holds a re-join until every commit in flight has completed, so as a backstop the
  source replaces a member that has had no assignment (an empty one counts) for
  REJOIN_DEADLINE_SECONDS while the cluster answers with the topic's partitions: an `error` log
  line, `kafka_consumers_replaced_total{reason="outside_group"}`.

The KIP-848 consumer protocol (`group.protocol=consumer`) also rides out the outage, but a crashed
member then keeps its partitions for the broker's `group.consumer.session.timeout.ms` (45 s by
default, not settable by the client) instead of our 10 s, so the classic protocol is kept.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer

from runtime.settings import KafkaSettings

log = logging.getLogger(__name__)

# How long a broker that went away is left alone before the client tries it again, at most.
RECONNECT_BACKOFF_MAX_MS = 1000
# A member that stops heartbeating (crash, SIGKILL) keeps its partitions this long (the broker's
# minimum is 6 s); consumers with their own setting (the projector) override it.
SESSION_TIMEOUT_MS = 10_000
# How long close_consumer lets the unsubscribe complete so that LeaveGroup is sent.
LEAVE_GRACE_SECONDS = 0.5
# A member outside its group this long while the cluster answers is replaced (module docstring).
# Above any healthy re-join here (~2-3 s after an outage, a session timeout after a crash); a
# rebalance held up by a slow peer can last up to that peer's max.poll.interval.ms, and replacing
# our member then only makes it join that same rebalance anew.
REJOIN_DEADLINE_SECONDS = 60.0
# Past the deadline, how often the cluster is asked whether the topic has partitions.
MEMBERSHIP_CHECK_INTERVAL_SECONDS = 10.0
# How long that metadata request may take (it runs on the consumer loop's thread).
METADATA_TIMEOUT_SECONDS = 2.0


def producer_config(settings: KafkaSettings, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS,
        # Idempotent: retries never duplicate or reorder within a partition (implies acks=all).
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "compression.type": "lz4",
        # Give up on a message after this long; the relay then re-sends from its checkpoint.
        "message.timeout.ms": 30000,
        "reconnect.backoff.max.ms": RECONNECT_BACKOFF_MAX_MS,
    }
    config.update(overrides)
    return config


def consumer_config(settings: KafkaSettings, group_id: str, **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS,
        "group.id": group_id,
        # Static membership: after an outage this consumer takes its partitions straight back
        # instead of waiting for its own lost session to expire on the broker (module docstring).
        "group.instance.id": instance_id(group_id),
        "session.timeout.ms": SESSION_TIMEOUT_MS,
        "heartbeat.interval.ms": SESSION_TIMEOUT_MS // 5,
        "reconnect.backoff.max.ms": RECONNECT_BACKOFF_MAX_MS,
        # Offsets are committed by hand, only after the effect of a message is durable.
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "isolation.level": "read_committed",
    }
    config.update(overrides)
    return config


def instance_id(group_id: str) -> str:
    """A static member id that no other consumer shares (host and pid only help operators read
    `kafka-consumer-groups --describe`); stable for the life of one consumer."""
    return f"{group_id}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def close_consumer(consumer: Consumer, grace: float = LEAVE_GRACE_SECONDS) -> None:
    """Leave the group, then close: a static member's plain close() does not leave, and its
    partitions would sit idle for a session timeout before anyone else got them."""
    try:
        consumer.unsubscribe()
    except RuntimeError:
        return  # already closed
    deadline = time.monotonic() + grace
    # The LeaveGroup request goes out once the unassignment is done, from the poll loop.
    while time.monotonic() < deadline:
        consumer.poll(0.05)
    consumer.close()


def close_producer(producer: Producer, grace: float) -> int:
    """Wait up to `grace` seconds for what is queued to be acknowledged, drop the rest, then free
    the client: returns how many messages were dropped. (librdkafka otherwise keeps retrying a
    broker that is gone for as long as the object lives, and `close()` alone waits for the queue
    with no timeout.) Every producer here can drop them: its caller publishes again whatever
    was not acknowledged (the relay from its checkpoint, a dead letter with its batch)."""
    left = producer.flush(grace)
    if left:
        producer.purge()
    producer.close()
    return left


def topic_has_partitions(consumer: Any, topic: str) -> bool:
    """True when the cluster answers and `topic` has partitions for the group to hand out."""
    try:
        metadata = consumer.list_topics(topic, timeout=METADATA_TIMEOUT_SECONDS)
    except KafkaException:
        return False
    found = metadata.topics.get(topic)
    return found is not None and found.error is None and bool(found.partitions)


def abandon_consumer(consumer: Any) -> None:
    """Close a consumer stuck outside its group on a thread of its own: a wedged client's close
    may wait for what wedged it, and the loop must go on with its replacement meanwhile. Its
    rebalance callbacks during the close are ignored (consuming/source.py)."""

    def close() -> None:
        try:
            close_consumer(consumer)
        except (KafkaException, RuntimeError) as e:
            log.warning("closing the stuck consumer failed", extra={"error": str(e)})

    threading.Thread(target=close, name="abandoned-kafka-consumer", daemon=True).start()


def is_fatal(error: KafkaError) -> bool:
    """True when the client that reported `error` is unusable and must be replaced."""
    return bool(error.fatal()) or error.code() == KafkaError._FATAL


def discard_consumer(consumer: Any, error: KafkaError) -> None:
    """Close a consumer that hit a fatal error (module docstring); a dead client may raise on the
    way out, which changes nothing: it is replaced either way."""
    log.error("consumer hit a fatal error; creating a new one", extra={"error": str(error)})
    try:
        close_consumer(consumer, grace=0)
    except (KafkaException, RuntimeError) as e:
        log.warning("closing the failed consumer failed", extra={"error": str(e)})
