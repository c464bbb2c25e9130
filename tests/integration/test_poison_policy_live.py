"""The poison policy with real PostgreSQL and Kafka: a database that drops every connection is a
transient failure (the relay and the projector recover by themselves and never halt); a stored
event the relay cannot translate is a bug (it halts before it, then resumes there once fixed)."""

from __future__ import annotations

import logging
import time
from typing import Any

import psycopg
import pytest

from contracts.events import TaskRenamed
from runtime.settings import DatabaseSettings, KafkaSettings
from tests.support.read_side import expected_tables, running_projector, wait_for_tables, wait_until
from tests.support.system import running_relay, store_for

pytestmark = pytest.mark.integration


def terminate_other_connections(db: DatabaseSettings) -> int:
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return len(rows)


def test_dropped_database_connections_are_transient_and_no_worker_halts(
    read_db: DatabaseSettings, kafka_settings: KafkaSettings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    with (
        store_for(read_db) as store,
        running_relay(store, read_db, kafka_settings) as relay,
        running_projector(read_db, kafka_settings, group="projector-drops") as projector,
    ):
        user = store.register_user("ada@example.com", "hash").aggregate.id
        store.create_task(user, "before")
        wait_for_tables(read_db, expected_tables(store))
        for round_ in range(3):
            assert terminate_other_connections(read_db) >= 2, "relay and projector were connected"
            time.sleep(0.3)
            for _ in range(50):  # the store's own pool may hand out a dead connection once
                try:
                    store.create_task(user, f"after drop {round_}")
                    break
                except Exception:
                    time.sleep(0.1)
            else:
                raise AssertionError("the store never recovered")
        wait_for_tables(read_db, expected_tables(store))
        warnings = [r.getMessage() for r in caplog.records]
        assert "relay interrupted, retrying" in warnings, "the relay did hit the drops"
        assert relay.heartbeat.halted is None and relay.heartbeat.readiness().ready
        assert projector.heartbeat.halted is None and projector.heartbeat.readiness().ready


def test_the_relay_halts_before_an_event_it_cannot_translate_and_resumes_there_once_fixed(
    db_settings: DatabaseSettings, kafka_settings: KafkaSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import event_store.relay as relay_module
    from event_store.public import PUBLIC_TOPICS
    from event_store.public import public_event_of as translate
    from tests.support.infra import consume_events

    def broken(domain_event: Any, position: int) -> Any:
        event = translate(domain_event, position)
        if isinstance(event, TaskRenamed):  # a translation bug for one event type
            raise KeyError("no translation for the renamed title")
        return event

    monkeypatch.setattr(relay_module, "public_event_of", broken)
    with store_for(db_settings) as store:
        user = store.register_user("ada@example.com", "hash").aggregate.id
        task = store.create_task(user, "first").aggregate.id
        store.update_task(user, task, title="renamed")
        store.create_task(user, "after the rename")
        with running_relay(store, db_settings, kafka_settings) as relay:
            wait_until(lambda: relay.heartbeat.halted is not None, 60, "the relay to halt")
            reason = relay.heartbeat.readiness().reason
            published = relay.published
        assert reason is not None and "KeyError" in reason and "no translation" in reason
        assert published == 0, "the batch holding the bad event is not published at all"

        monkeypatch.setattr(relay_module, "public_event_of", translate)  # the fix, deployed
        with running_relay(store, db_settings, kafka_settings):
            expected = {
                n.id for n in store.recorder.select_notifications(1, 100, topics=PUBLIC_TOPICS)
            }
            events = consume_events(
                kafka_settings, until=lambda es: expected <= {e.position for e in es}
            )
    positions = [e.position for e in events]
    assert set(positions) == expected and positions == sorted(positions), "nothing skipped"
    assert [e.type for e in events].count("task.renamed") == 1
