"""The relay carries every public event from the store to real Kafka, in order, without loss."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from contracts.events import TaskCreated, decode_event
from event_store.application import TodoStore
from event_store.public import PUBLIC_TOPICS
from runtime.settings import DatabaseSettings, KafkaSettings
from tests.support.infra import consume_all, consume_events
from tests.support.private_infra import private_kafka
from tests.support.processes import relay_process
from tests.support.system import running_relay, store_for

ROOT = Path(__file__).parents[2]
pytestmark = pytest.mark.integration


def public_positions(store: TodoStore) -> set[int]:
    return {n.id for n in store.recorder.select_notifications(1, 1_000_000, topics=PUBLIC_TOPICS)}


def positions_seen(kafka: KafkaSettings, expected: set[int], timeout: float = 60) -> set[int]:
    events = consume_events(
        kafka, until=lambda es: expected <= {e.position for e in es}, timeout=timeout
    )
    return {e.position for e in events}


def test_a_commands_event_appears_on_kafka_with_the_documented_envelope(
    db_settings: DatabaseSettings, kafka_settings: KafkaSettings
) -> None:
    with store_for(db_settings) as store, running_relay(store, db_settings, kafka_settings):
        user = store.register_user("ada@example.com", "secret-hash").aggregate
        task = store.create_task(user.id, "  write the relay ").aggregate
        messages = consume_all(kafka_settings, until=lambda ms: len(ms) >= 2)

    by_type = {json.loads(m.value())["type"]: m for m in messages}
    assert set(by_type) == {"user.registered", "task.created"}
    created = by_type["task.created"]
    assert created.key() == str(user.id).encode()
    body = json.loads(created.value())
    assert set(body) == {
        "event_id", "type", "occurred_at", "user_id", "task_id", "title",
        "position", "aggregate_version", "schema_version",
    }  # fmt: skip
    assert (body["user_id"], body["task_id"], body["title"]) == (
        str(user.id),
        str(task.id),
        "write the relay",
    )
    assert (body["aggregate_version"], body["schema_version"]) == (1, 1)
    assert UUID(body["event_id"])
    assert dict(created.headers() or [])["type"] == b"task.created"
    registered = by_type["user.registered"].value()
    assert b"secret-hash" not in registered and b"password" not in registered


def test_eight_concurrent_writers_produce_contiguous_complete_positions_in_order_per_user(
    db_settings: DatabaseSettings, kafka_settings: KafkaSettings
) -> None:
    with store_for(db_settings) as store:
        users = [store.register_user(f"w{i}@example.com", "h").aggregate.id for i in range(8)]
        first_task_position = store.head_position() + 1

        def write(user_id: UUID) -> None:
            for n in range(40):
                task = store.create_task(user_id, f"task {n}").aggregate
                if n % 4 == 0:
                    store.update_task(user_id, task.id, done=True)

        with running_relay(store, db_settings, kafka_settings, RELAY_BATCH_SIZE=37):
            threads = [threading.Thread(target=write, args=(u,)) for u in users]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            expected = {p for p in public_positions(store) if p >= first_task_position}
            events = consume_events(
                kafka_settings, until=lambda es: expected <= {e.position for e in es}
            )

    positions = sorted(e.position for e in events if e.position >= first_task_position)
    assert len(expected) == 8 * 50
    assert positions == list(range(first_task_position, first_task_position + 8 * 50))
    for user_id in users:  # one partition per user: their events arrive in store order
        mine = [e.position for e in events if e.user_id == user_id]
        assert mine == sorted(mine)


def test_killing_the_relay_mid_stream_and_restarting_it_loses_nothing(
    db_settings: DatabaseSettings, kafka_settings: KafkaSettings
) -> None:
    with store_for(db_settings) as store:
        user = store.register_user("k@example.com", "h").aggregate.id
        for n in range(600):
            store.create_task(user, f"before {n}")
        with relay_process(db_settings, kafka_settings, RELAY_BATCH_SIZE="25") as relay:
            consume_all(kafka_settings, until=lambda ms: len(ms) >= 100)
            relay.send_signal(signal.SIGKILL)
            relay.wait(timeout=10)
        seen_before_restart = len(consume_all(kafka_settings, until=lambda ms: False, timeout=2))
        assert seen_before_restart < 601, "the relay was killed before finishing"
        for n in range(100):
            store.create_task(user, f"after {n}")
        expected = public_positions(store)
        with relay_process(db_settings, kafka_settings):
            seen = positions_seen(kafka_settings, expected)
    assert seen == expected


def test_commands_succeed_while_kafka_is_down_and_every_event_arrives_when_it_is_back(
    db_settings: DatabaseSettings,
) -> None:
    with private_kafka(19092) as broker:
        kafka = broker.settings
        with store_for(db_settings) as store, running_relay(store, db_settings, kafka):
            user = store.register_user("down@example.com", "h").aggregate.id
            store.create_task(user, "while up")
            consume_all(kafka, until=lambda ms: len(ms) >= 2)

            with broker.outage():
                written = [store.create_task(user, f"while down {n}") for n in range(20)]
                assert all(w.position for w in written)  # the store is the truth: commands succeed

            expected = public_positions(store)
            seen = positions_seen(kafka, expected, timeout=120)
        assert seen == expected


def _decoded(messages: list[Any]) -> list[TaskCreated]:
    return [e for m in messages if isinstance(e := decode_event(m.value()), TaskCreated)]


def test_resent_events_keep_their_event_id(
    db_settings: DatabaseSettings, kafka_settings: KafkaSettings
) -> None:
    with store_for(db_settings) as store:
        user = store.register_user(f"{uuid4().hex[:6]}@example.com", "h").aggregate.id
        store.create_task(user, "once")
        with running_relay(store, db_settings, kafka_settings):
            consume_all(kafka_settings, until=lambda ms: len(ms) >= 2)
        # Forget the checkpoint: the relay re-sends everything, as after a crash before saving it.
        import psycopg

        with psycopg.connect(db_settings.conninfo, autocommit=True) as conn:
            conn.execute("delete from relay_checkpoints")
        with running_relay(store, db_settings, kafka_settings):
            messages = consume_all(kafka_settings, until=lambda ms: len(ms) >= 4)
    created = _decoded(messages)
    assert len(created) == 2
    assert created[0].event_id == created[1].event_id


def test_the_relay_process_reports_ready_on_its_health_endpoint(
    db_settings: DatabaseSettings, kafka_settings: KafkaSettings
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/ready"
    with relay_process(db_settings, kafka_settings, RELAY_HEALTH_PORT=str(port)):
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline and status != 200:
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    status = response.status
            except OSError:
                time.sleep(0.2)
    assert status == 200
