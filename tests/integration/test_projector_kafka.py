"""The live projector against real Kafka and PostgreSQL: events flow from the store through the
relay and Kafka into the read tables; garbage is dead-lettered; duplicates change nothing."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import psycopg
import pytest
from confluent_kafka import Producer

from contracts.events import PublicEvent, encode_event
from event_store.application import TodoStore
from runtime.kafka import producer_config
from runtime.settings import DatabaseSettings, KafkaSettings
from tests.support.events import History
from tests.support.infra import consume_all
from tests.support.read_side import (
    applied_offsets,
    expected_tables,
    running_projector,
    snapshot,
    store_events,
    wait_for_tables,
    wait_until,
)
from tests.support.system import live_pipeline

pytestmark = pytest.mark.integration


def some_history(store: TodoStore, users: int = 3, tasks: int = 4) -> None:
    for u in range(users):
        user = store.register_user(f"user{u}@example.com", "hash").aggregate.id
        for t in range(tasks):
            task = store.create_task(user, f"task {t}").aggregate.id
            if t % 2:
                store.update_task(user, task, done=True)
            if t % 3 == 2:
                store.delete_task(user, task)


def produce_raw(kafka: KafkaSettings, messages: list[tuple[bytes | None, bytes | None]]) -> None:
    producer = Producer(producer_config(kafka))
    for key, value in messages:
        producer.produce(kafka.KAFKA_TOPIC, key=key, value=value)
    assert producer.flush(20) == 0


def end_offsets(kafka: KafkaSettings) -> dict[int, int]:
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": kafka.KAFKA_BOOTSTRAP_SERVERS, "group.id": "probe"})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(kafka.KAFKA_TOPIC, p), timeout=10)[1]
            for p in range(3)
        }
    finally:
        consumer.close()


def all_applied(db: DatabaseSettings, kafka: KafkaSettings) -> bool:
    applied = applied_offsets(db, kafka.KAFKA_TOPIC)
    return all(applied.get(p, -1) + 1 >= end for p, end in end_offsets(kafka).items() if end)


def test_events_written_to_the_store_end_up_in_the_read_tables_through_kafka(
    read_db: DatabaseSettings, kafka_settings: KafkaSettings
) -> None:
    with live_pipeline(read_db, kafka_settings, group="projector-flow") as store:
        some_history(store)
        wait_for_tables(read_db, expected_tables(store))
    tables = snapshot(read_db)
    assert len(tables["users"]) == 3
    assert len(tables["tasks"]) == 12
    assert sum(1 for t in tables["tasks"] if t[7]) == 3  # soft-deleted, kept as tombstones


def test_a_garbage_message_lands_on_the_dead_letter_topic_and_later_events_are_still_applied(
    read_db: DatabaseSettings, kafka_settings: KafkaSettings
) -> None:
    with live_pipeline(read_db, kafka_settings, group="projector-dlq") as store:
        user = store.register_user("ada@example.com", "hash").aggregate.id
        wait_for_tables(read_db, expected_tables(store))
        produce_raw(
            kafka_settings,
            [
                (str(user).encode(), b"this is not an event"),
                (str(user).encode(), b'{"type": "task.created", "title": 42}'),
            ],
        )
        store.create_task(user, "after the garbage")
        wait_for_tables(read_db, expected_tables(store))
    dead = consume_all(
        kafka_settings, topic=kafka_settings.KAFKA_DLQ_TOPIC, until=lambda ms: len(ms) >= 2
    )
    assert sorted(m.value() for m in dead) == sorted(
        [b'{"type": "task.created", "title": 42}', b"this is not an event"]
    )
    headers = dict(dead[0].headers() or [])
    assert headers["dlq.reason"].startswith(b"undecodable")
    assert headers["dlq.topic"] == kafka_settings.KAFKA_TOPIC.encode()
    assert (headers["dlq.kind"], headers["dlq.consumer"]) == (b"poison", b"projector-dlq")
    assert {"dlq.partition", "dlq.offset", "dlq.failed_at", "dlq.service"} <= set(headers)
    assert [t[2] for t in snapshot(read_db)["tasks"]] == ["after the garbage"]


def test_an_event_the_database_cannot_store_is_dead_lettered_and_the_projector_carries_on(
    read_db: DatabaseSettings, kafka_settings: KafkaSettings
) -> None:
    # PostgreSQL text cannot hold NUL characters. The write side refuses such a title, but a raw
    # Kafka message can still carry one: that event must be parked and dead-lettered, not stall
    # the partition (the rest of its batch is applied).
    h, user = History(), uuid4()
    events: list[PublicEvent] = [
        h.register(user),
        h.create(user, uuid4(), "nul \x00 inside"),
        h.create(user, uuid4()),
    ]
    with running_projector(read_db, kafka_settings, group="projector-poison"):
        produce_raw(kafka_settings, [(str(user).encode(), encode_event(e)) for e in events])
        wait_until(
            lambda: [t[2] for t in snapshot(read_db)["tasks"]] == ["write tests"],
            what="the good task to be applied",
        )
    dead = consume_all(
        kafka_settings, topic=kafka_settings.KAFKA_DLQ_TOPIC, until=lambda ms: len(ms) >= 1
    )
    assert len(dead) == 1
    assert dict(dead[0].headers() or [])["dlq.reason"].startswith(b"unappliable: ProjectionError")


def test_redelivering_every_consumed_message_leaves_the_tables_unchanged(
    read_db: DatabaseSettings, kafka_settings: KafkaSettings
) -> None:
    with live_pipeline(read_db, kafka_settings, group="projector-dup") as store:
        some_history(store, users=2, tasks=5)
        wait_for_tables(read_db, expected_tables(store))
        before = snapshot(read_db)
        originals = consume_all(
            kafka_settings, until=lambda ms: len(ms) >= len(store_events(store))
        )
        duplicates: list[tuple[Any, Any]] = [(m.key(), m.value()) for m in originals]
        produce_raw(kafka_settings, duplicates + duplicates[::-1])
        wait_until(lambda: all_applied(read_db, kafka_settings), what="duplicates to be consumed")
        after = snapshot(read_db)
    assert after == before


def highest_position(db: DatabaseSettings) -> int | None:
    with psycopg.connect(db.conninfo) as conn:
        row = conn.execute("SELECT max(position) FROM projector_progress").fetchone()
    return None if row is None else row[0]


def test_progress_records_the_last_offset_and_position_applied_per_partition(
    read_db: DatabaseSettings, kafka_settings: KafkaSettings
) -> None:
    with live_pipeline(read_db, kafka_settings, group="projector-progress") as store:
        some_history(store, users=4, tasks=1)
        head = store.recorder.max_notification_id()
        wait_until(lambda: highest_position(read_db) == head, what="the last event applied")
        wait_until(lambda: all_applied(read_db, kafka_settings), what="every partition applied")
    ends = {p: end for p, end in end_offsets(kafka_settings).items() if end}
    applied = applied_offsets(read_db, kafka_settings.KAFKA_TOPIC)
    assert {p: offset + 1 for p, offset in applied.items()} == ends
