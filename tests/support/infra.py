"""Real infrastructure for integration tests: a throwaway database and throwaway Kafka topics."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import psycopg
import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]
from psycopg import sql

from contracts.events import PublicEvent, decode_event
from runtime.settings import DatabaseSettings, KafkaSettings

PARTITIONS = 3


def _admin_conn(base: DatabaseSettings) -> psycopg.Connection[Any]:
    admin = base.model_copy(update={"POSTGRES_DB": "postgres"})
    try:
        return psycopg.connect(admin.conninfo, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as e:
        pytest.fail(f"PostgreSQL is not reachable ({e}); start it with `infra/postgres.sh start`")


@contextmanager
def fresh_database() -> Iterator[DatabaseSettings]:
    base = DatabaseSettings()
    name = f"test_{uuid.uuid4().hex[:12]}"
    with _admin_conn(base) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    try:
        yield base.model_copy(update={"POSTGRES_DB": name})
    finally:
        with _admin_conn(base) as conn:
            conn.execute(
                sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name))
            )


def process_env(db: DatabaseSettings, kafka: KafkaSettings, **extra: str) -> dict[str, str]:
    """The environment for a real service process (`python -m ...`) wired to this test's
    database and topics: settings travel as environment variables, as in production."""
    return {
        **os.environ,
        "POSTGRES_HOST": db.POSTGRES_HOST,
        "POSTGRES_PORT": str(db.POSTGRES_PORT),
        "POSTGRES_USER": db.POSTGRES_USER,
        "POSTGRES_PASSWORD": db.POSTGRES_PASSWORD.get_secret_value(),
        "POSTGRES_DB": db.POSTGRES_DB,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.KAFKA_BOOTSTRAP_SERVERS,
        "KAFKA_TOPIC": kafka.KAFKA_TOPIC,
        "KAFKA_DLQ_TOPIC": kafka.KAFKA_DLQ_TOPIC,
        # No health endpoints unless a test asks: several workers may run side by side.
        **{f"{w}_HEALTH_PORT": "0" for w in ("RELAY", "PROJECTOR", "SCHEDULER", "MAILER")},
        **extra,
    }


def admin_client(settings: KafkaSettings) -> AdminClient:
    return AdminClient({"bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS})


@contextmanager
def fresh_topics() -> Iterator[KafkaSettings]:
    base = KafkaSettings()
    suffix = uuid.uuid4().hex[:10]
    settings = base.model_copy(
        update={"KAFKA_TOPIC": f"events-{suffix}", "KAFKA_DLQ_TOPIC": f"events-{suffix}.dlq"}
    )
    admin = admin_client(settings)
    names = [settings.KAFKA_TOPIC, settings.KAFKA_DLQ_TOPIC]
    try:
        futures = admin.create_topics([_new_topic(admin, n) for n in names])
        for f in futures.values():
            f.result(timeout=20)
    except KafkaException as e:
        pytest.fail(f"Kafka is not reachable ({e}); start it with `infra/kafka.sh start`")
    _wait_for_metadata(admin, names)
    try:
        yield settings
    finally:
        for f in admin.delete_topics(names).values():
            with suppress(KafkaException):
                f.result(timeout=20)


def _new_topic(admin: AdminClient, name: str) -> NewTopic:
    """As infra/kafka.sh creates them: on a cluster (`KAFKA_BROKERS=3 make test`) replicated
    to 3 brokers with min.insync.replicas=2, so the tests run against what production uses."""
    brokers = len(admin.list_topics(timeout=20).brokers)
    if brokers < 3:
        return NewTopic(name, PARTITIONS, 1)
    return NewTopic(name, PARTITIONS, 3, config={"min.insync.replicas": "2"})


def cluster_bootstrap_servers() -> str | None:
    """With KAFKA_BROKERS=3 (a cluster started by `KAFKA_BROKERS=3 infra/kafka.sh start`) every
    node's address, as infra/kafka/cluster.sh derives them; None for the single broker."""
    if os.environ.get("KAFKA_BROKERS", "1") == "1":
        return None
    script = Path(__file__).parents[2] / "infra" / "kafka.sh"
    result = subprocess.run([str(script), "bootstrap"], capture_output=True, text=True, check=True)
    return result.stdout.strip()


def _wait_for_metadata(admin: AdminClient, names: list[str]) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        topics = admin.list_topics(timeout=5).topics
        if all(n in topics and len(topics[n].partitions) == PARTITIONS for n in names):
            return
        time.sleep(0.1)
    raise AssertionError(f"topics {names} did not appear")


def consume_all(
    settings: KafkaSettings,
    *,
    topic: str | None = None,
    until: Callable[[list[Any]], bool],
    timeout: float = 30.0,
) -> list[Any]:
    """Read raw messages from the beginning of `topic` until `until(messages)` holds."""
    topic = topic or settings.KAFKA_TOPIC
    consumer = Consumer(
        {
            "bootstrap.servers": settings.KAFKA_BOOTSTRAP_SERVERS,
            "group.id": f"test-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    messages: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while not until(messages) and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error() is None:
                messages.append(msg)
    finally:
        consumer.close()
    return messages


def consume_events(
    settings: KafkaSettings, until: Callable[[list[PublicEvent]], bool], timeout: float = 30.0
) -> list[PublicEvent]:
    events: list[PublicEvent] = []

    def done(messages: list[Any]) -> bool:
        events[:] = [decode_event(m.value()) for m in messages]
        return until(events)

    consume_all(settings, until=done, timeout=timeout)
    return events
