"""The poison policy with real PostgreSQL and Kafka: a database that drops every connection is a
transient failure — the relay and the projector recover by themselves and never halt."""

from __future__ import annotations

import logging
import time

import psycopg
import pytest

from common.settings import DatabaseSettings, KafkaSettings
from tests.support.read_side import (
    fold,
    read_db,
    running_projector,
    store_events,
    wait_for_tables,
)
from tests.support.system import running_relay, store_for

pytestmark = pytest.mark.integration
__all__ = ["read_db"]


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
        wait_for_tables(read_db, fold(store_events(store)))
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
        wait_for_tables(read_db, fold(store_events(store)))
        warnings = [r.getMessage() for r in caplog.records]
        assert "relay interrupted, retrying" in warnings, "the relay did hit the drops"
        assert relay.heartbeat.halted is None and relay.heartbeat.readiness().ready
        assert projector.heartbeat.halted is None and projector.heartbeat.readiness().ready
