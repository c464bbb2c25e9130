"""`python -m projector status`: how far each stage of the pipeline is.

- store head: the highest notification id in the event store;
- relay: the last position published to Kafka (relay_checkpoints);
- projector: the position up to which *every* event has been applied. Per partition the projector
  records the last offset and highest position applied; a partition whose applied offset has
  reached Kafka's end offset is caught up, so everything the relay published is applied there. The
  projector position is therefore the relay position, lowered to the applied position of any
  partition that is still behind.
- lag: store head - projector position (in positions), and the messages not yet applied (Kafka).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from confluent_kafka import Consumer, KafkaException, TopicPartition

from runtime.settings import DatabaseSettings, KafkaSettings


@dataclass(frozen=True)
class PartitionStatus:
    partition: int
    applied_offset: int | None  # last offset applied (read tables), None if none yet
    applied_position: int  # highest store position applied from this partition
    end_offset: int | None  # Kafka's high watermark (next offset to be written), None if unknown
    committed_offset: int | None = None  # the consumer group's committed offset in Kafka

    @property
    def behind(self) -> int | None:
        """Messages on the partition not yet applied."""
        if self.end_offset is None:
            return None
        next_offset = 0 if self.applied_offset is None else self.applied_offset + 1
        return max(0, self.end_offset - next_offset)


@dataclass(frozen=True)
class Status:
    store_head: int
    relay_position: int | None
    projector_position: int
    projector_position_exact: bool  # False when Kafka could not be asked
    partitions: list[PartitionStatus] = field(default_factory=list)
    kafka_error: str | None = None
    parked: int | None = None  # messages parked in dead_letters (None: table not migrated yet)

    @property
    def lag_positions(self) -> int:
        return max(0, self.store_head - self.projector_position)

    @property
    def lag_messages(self) -> int | None:
        behind = [p.behind for p in self.partitions]
        if not behind or any(b is None for b in behind):
            return None
        return sum(b for b in behind if b is not None)


def projector_position(relay_position: int | None, partitions: list[PartitionStatus]) -> int:
    """Highest position up to which every published event has been applied."""
    caught_up = relay_position if relay_position is not None else 0
    if relay_position is None:
        caught_up = max((p.applied_position for p in partitions), default=0)
    behind = [p.applied_position for p in partitions if p.behind]
    return min([caught_up, *behind])


def collect_status(
    store_head: int, db: DatabaseSettings, kafka: KafkaSettings, group_id: str, relay_name: str
) -> Status:
    with psycopg.connect(db.conninfo, autocommit=True, connect_timeout=5) as conn:
        relay = _scalar(conn, "SELECT position FROM relay_checkpoints WHERE name = %s", relay_name)
        parked = _scalar(conn, "SELECT count(*) FROM dead_letters WHERE consumer = %s", group_id)
        applied = {
            int(r[0]): (int(r[1]), int(r[2]))
            for r in conn.execute(
                'SELECT partition, "offset", position FROM projector_progress WHERE topic = %s',
                (kafka.KAFKA_TOPIC,),
            )
        }
    kafka_error = None
    try:
        ends, committed = _kafka_offsets(kafka, group_id)
    except KafkaException as e:
        kafka_error = str(e)
        ends, committed = {}, {}
    numbers = sorted(set(applied) | set(ends))
    partitions = [
        PartitionStatus(
            partition=n,
            applied_offset=applied[n][0] if n in applied else None,
            applied_position=applied[n][1] if n in applied else 0,
            end_offset=ends.get(n),
            committed_offset=committed.get(n),
        )
        for n in numbers
    ]
    exact = kafka_error is None
    return Status(
        store_head=store_head,
        relay_position=None if relay is None else int(relay),
        projector_position=projector_position(None if relay is None else int(relay), partitions)
        if exact
        else max((p.applied_position for p in partitions), default=0),
        projector_position_exact=exact,
        partitions=partitions,
        kafka_error=kafka_error,
        parked=None if parked is None else int(parked),
    )


def _scalar(conn: psycopg.Connection[Any], query: str, *params: object) -> Any:
    try:
        with conn.transaction():
            row = conn.execute(query, params or None).fetchone()
    except psycopg.errors.UndefinedTable:
        return None
    return row[0] if row else None


def _kafka_offsets(kafka: KafkaSettings, group_id: str) -> tuple[dict[int, int], dict[int, int]]:
    consumer = Consumer(
        {
            "bootstrap.servers": kafka.KAFKA_BOOTSTRAP_SERVERS,
            "group.id": group_id,
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    try:
        topic = consumer.list_topics(kafka.KAFKA_TOPIC, timeout=5).topics.get(kafka.KAFKA_TOPIC)
        if topic is None or topic.error is not None:
            raise KafkaException(f"topic {kafka.KAFKA_TOPIC!r} not found")
        ends: dict[int, int] = {}
        for number in topic.partitions:
            _low, high = consumer.get_watermark_offsets(
                TopicPartition(kafka.KAFKA_TOPIC, number), timeout=5
            )
            ends[number] = int(high)
        committed = {
            tp.partition: int(tp.offset)
            for tp in consumer.committed(
                [TopicPartition(kafka.KAFKA_TOPIC, n) for n in ends], timeout=5
            )
            if tp.offset >= 0
        }
        return ends, committed
    finally:
        consumer.close()


def format_status(status: Status) -> str:
    relay = "never ran" if status.relay_position is None else str(status.relay_position)
    approx = "" if status.projector_position_exact else " (approximate: Kafka unreachable)"
    messages = status.lag_messages
    lines = [
        f"store head position:  {status.store_head}",
        f"relay position:       {relay}",
        f"projector position:   {status.projector_position}{approx}",
        f"projector lag:        {status.lag_positions} positions"
        + ("" if messages is None else f", {messages} messages"),
    ]
    if status.parked:
        lines.append(f"parked messages:      {status.parked} (see `python -m projector dlq list`)")
    if status.kafka_error:
        lines.append(f"kafka:                {status.kafka_error}")
    for p in status.partitions:
        applied = "-" if p.applied_offset is None else str(p.applied_offset)
        end = "?" if p.end_offset is None else str(p.end_offset)
        committed = "-" if p.committed_offset is None else str(p.committed_offset)
        behind = "?" if p.behind is None else str(p.behind)
        lines.append(
            f"  partition {p.partition}: applied offset {applied}, committed {committed},"
            f" end {end}, behind {behind}, position {p.applied_position}"
        )
    return "\n".join(lines)


def status_json(status: Status) -> str:
    body = asdict(status)
    body["lag_positions"] = status.lag_positions
    body["lag_messages"] = status.lag_messages
    return json.dumps(body, indent=2)
