"""The operators' commands as they are typed: `python -m projector status` and `... rebuild`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from projector.status import collect_status
from runtime.settings import DatabaseSettings, KafkaSettings, RelaySettings
from tests.support.read_side import (
    ROOT,
    expected_tables,
    projector_env,
    running_projector,
    seed,
    snapshot,
    store_events,
    wait_until,
)
from tests.support.system import running_relay, store_for

pytestmark = pytest.mark.integration


def run_cli(
    db: DatabaseSettings, kafka: KafkaSettings, group: str, *args: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "projector", *args],
        cwd=ROOT,
        env=projector_env(db, kafka, group),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_status_shows_store_relay_and_projector_at_the_same_position_once_caught_up(
    read_db: DatabaseSettings, kafka_settings: KafkaSettings
) -> None:
    group = "projector-status"
    with store_for(read_db) as store:
        with (
            running_relay(store, read_db, kafka_settings),
            running_projector(read_db, kafka_settings, group=group),
        ):
            seed(store, users=3, tasks_per_user=5)
            head = store.recorder.max_notification_id() or 0
            wait_until(
                lambda: (
                    collect_status(
                        head, read_db, kafka_settings, group, RelaySettings().RELAY_NAME
                    ).projector_position
                    == head
                ),
                what="the projector to catch up",
            )
        result = run_cli(read_db, kafka_settings, group, "status", "--json")
        assert result.returncode == 0, result.stderr
        status = json.loads(result.stdout)
        assert (status["store_head"], status["relay_position"]) == (head, head)
        assert (status["projector_position"], status["lag_positions"]) == (head, 0)
        assert status["lag_messages"] == 0
        assert len(status["partitions"]) == 3

        store.create_task(store_events(store)[0].user_id, "not yet projected")
        text = run_cli(read_db, kafka_settings, group, "status").stdout
    assert f"store head position:  {head + 1}" in text
    assert f"relay position:       {head}" in text
    assert "projector lag:        1 positions, 0 messages" in text


def test_rebuild_from_the_command_line_shows_progress_and_a_summary(
    read_db: DatabaseSettings, kafka_settings: KafkaSettings
) -> None:
    with store_for(read_db) as store:
        seed(store, users=2, tasks_per_user=30)
        events = len(store_events(store))
        result = run_cli(read_db, kafka_settings, "unused", "rebuild")
        assert result.returncode == 0, result.stderr
        assert snapshot(read_db) == expected_tables(store)
    assert f"from {events} events" in result.stdout
    assert "events/s" in result.stdout
    assert "replaying store" in result.stderr  # the tqdm progress bar
