"""Real `python -m projector consume` processes: killed mid-stream and restarted, or two of them
sharing the partitions of one consumer group; either way the tables end equal to a rebuild."""

from __future__ import annotations

import signal
import subprocess

import psycopg
import pytest
from confluent_kafka.admin import AdminClient

from event_store.application import TodoStore
from projector.rebuild import Rebuild
from projector.settings import ProjectorSettings
from runtime.settings import DatabaseSettings, KafkaSettings
from tests.support.read_side import (
    expected_tables,
    log_lines,
    seed,
    snapshot,
    start_projector_process,
    stop_process,
    wait_for_tables,
    wait_until,
)
from tests.support.system import running_relay, store_for

pytestmark = pytest.mark.integration


def rebuilt(store: TodoStore, db: DatabaseSettings) -> dict[str, list[tuple[object, ...]]]:
    Rebuild(store, db, ProjectorSettings(), workers=1, show_progress=False).run()
    return snapshot(db)


def tasks_applied(db: DatabaseSettings) -> int:
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM tasks").fetchone()
        return int(row[0]) if row else 0


def test_a_projector_killed_mid_stream_and_restarted_ends_with_the_rebuilt_tables(
    read_db: DatabaseSettings, kafka_settings: KafkaSettings
) -> None:
    group = "projector-kill"
    with store_for(read_db) as store, running_relay(store, read_db, kafka_settings):
        seed(store, users=12, tasks_per_user=100)  # ~3000 events, published at once
        expected = expected_tables(store)
        total_tasks = len(expected["tasks"])
        # Tiny batches, so that the kill lands between many committed transactions.
        process = start_projector_process(read_db, kafka_settings, group, PROJECTOR_BATCH_SIZE="5")
        try:
            wait_until(lambda: tasks_applied(read_db) > 50, what="the projector to start applying")
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
        finally:
            stop_process(process)
        assert 0 < tasks_applied(read_db) < total_tasks, "the kill should land mid-stream"

        restarted = start_projector_process(read_db, kafka_settings, group)
        try:
            wait_for_tables(read_db, expected, timeout=90)
        finally:
            stop_process(restarted)
        live = snapshot(read_db)
        assert live == rebuilt(store, read_db)


def group_assignment(kafka: KafkaSettings, group: str) -> list[set[int]]:
    admin = AdminClient({"bootstrap.servers": kafka.KAFKA_BOOTSTRAP_SERVERS})
    description = admin.describe_consumer_groups([group])[group].result(timeout=10)
    return [
        {tp.partition for tp in member.assignment.topic_partitions}
        for member in description.members
    ]


def test_two_projector_processes_split_the_partitions_and_build_the_same_tables(
    read_db: DatabaseSettings, kafka_settings: KafkaSettings
) -> None:
    group = "projector-pair"
    processes: list[subprocess.Popen[bytes]] = []
    logs: list[str] = []
    try:
        with store_for(read_db) as store, running_relay(store, read_db, kafka_settings):
            processes = [start_projector_process(read_db, kafka_settings, group) for _ in range(2)]
            wait_until(
                lambda: (
                    len(assignment := group_assignment(kafka_settings, group)) == 2
                    and all(assignment)
                ),
                timeout=60,
                what="both processes to join the group and get partitions",
            )
            first, second = group_assignment(kafka_settings, group)
            assert not first & second and first | second == {0, 1, 2}

            seed(store, users=30, tasks_per_user=10)  # users spread over every partition
            wait_for_tables(read_db, expected_tables(store), timeout=90)
            live = snapshot(read_db)
            assert live == rebuilt(store, read_db)
    finally:
        logs = [stop_process(p) for p in processes]
    # Both processes did part of the work.
    for text in logs:
        stopped = [line for line in log_lines(text) if line.get("msg") == "projector stopped"]
        assert stopped and stopped[-1]["counters"]["handled"] > 0
