"""The rebuild replays the event store (not Kafka) into the tables the live projector builds."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from event_store.application import DigestDetails, TodoStore
from event_store.domain.model import DomainError
from projector.db import REBUILD_LOCK_KEY
from projector.rebuild import Rebuild, RebuildInProgressError, RebuildSummary
from projector.settings import ProjectorSettings
from runtime.settings import DatabaseSettings, KafkaSettings
from tests.support.read_side import expected_tables, seed, snapshot, store_events, wait_for_tables
from tests.support.system import live_pipeline, store_for

pytestmark = pytest.mark.integration

OPS = ("create", "create", "rename", "complete", "reopen", "delete", "restore", "digest")
Command = tuple[int, str, int, str]


def rebuild(
    store: TodoStore, db: DatabaseSettings, workers: int = 1, **overrides: Any
) -> RebuildSummary:
    """A rebuild in this process, with the projector's settings but for `overrides`."""
    chosen = ProjectorSettings(**overrides)
    return Rebuild(store, db, chosen, workers=workers, show_progress=False).run()


def run_commands(
    store: TodoStore, users: list[UUID], tasks: dict[UUID, list[UUID]], commands: list[Command]
) -> None:
    for user_index, op, task_index, title in commands:
        user = users[user_index % len(users)]
        mine = tasks[user]
        try:
            if op == "create" or not mine:
                mine.append(store.create_task(user, title).aggregate.id)
            elif op == "digest":
                day = date(2026, 1, 1) + timedelta(days=task_index)
                store.request_daily_digest(
                    day, DigestDetails(user, "x@example.com", len(mine), 0, [title])
                )
            else:
                task = mine[task_index % len(mine)]
                if op == "rename":
                    store.update_task(user, task, title=title)
                elif op == "complete":
                    store.update_task(user, task, done=True)
                elif op == "reopen":
                    store.update_task(user, task, done=False)
                elif op == "restore":
                    store.restore_task(user, task)
                else:
                    store.delete_task(user, task)
        except DomainError:
            pass  # e.g. a deleted task: the command is refused, as over HTTP


commands_strategy = st.lists(
    st.tuples(
        st.integers(0, 3),
        st.sampled_from(OPS),
        st.integers(0, 20),
        st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=12)
        .map(str.strip)
        .filter(bool),
    ),
    min_size=1,
    max_size=40,
)


def test_tables_built_live_from_kafka_equal_the_tables_rebuilt_from_the_store(
    read_db: DatabaseSettings, kafka_settings: KafkaSettings
) -> None:
    with live_pipeline(read_db, kafka_settings, group="projector-property") as store:
        users = [store.register_user(f"p{i}@example.com", "h").aggregate.id for i in range(4)]
        tasks: dict[UUID, list[UUID]] = {u: [] for u in users}

        # One database and topic for every example: each example adds commands on top of the
        # previous ones, waits for the live tables, then rebuilds them under the running projector.
        @settings(
            max_examples=15,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(commands=commands_strategy)
        def live_equals_rebuilt(commands: list[Command]) -> None:
            run_commands(store, users, tasks, commands)
            expected = expected_tables(store)
            wait_for_tables(read_db, expected)
            live = snapshot(read_db)
            rebuild(store, read_db)
            assert snapshot(read_db) == live == expected

        live_equals_rebuilt()


@pytest.mark.parametrize(
    "cache_rows",
    # 60: both workers outgrow their caches mid-replay, so both need the primary keys the bulk
    # phase otherwise leaves to the index phase (the first adds them, the other finds them).
    [1000, 60],
    ids=["caches-that-hold-everything", "caches-that-overflow"],
)
def test_a_rebuild_split_across_worker_processes_builds_the_same_tables(
    read_db: DatabaseSettings, cache_rows: int
) -> None:
    with store_for(read_db) as store:
        seed(store, users=6, tasks_per_user=50)
        summary = rebuild(
            store,
            read_db,
            workers=2,
            PROJECTOR_REBUILD_PAGE_SIZE=97,
            PROJECTOR_REBUILD_CACHE_ROWS=cache_rows,
        )
        assert summary.workers == 2
        assert summary.events == len(store_events(store))
        assert snapshot(read_db) == expected_tables(store)


def test_a_small_cache_that_flushes_mid_replay_builds_the_same_tables(
    read_db: DatabaseSettings,
) -> None:
    with store_for(read_db) as store:
        seed(store, users=3, tasks_per_user=40)
        rebuild(store, read_db, PROJECTOR_REBUILD_PAGE_SIZE=13, PROJECTOR_REBUILD_CACHE_ROWS=20)
        assert snapshot(read_db) == expected_tables(store)


def test_a_second_rebuild_is_refused_while_one_is_running(read_db: DatabaseSettings) -> None:
    with (
        store_for(read_db) as store,
        psycopg.connect(read_db.conninfo, autocommit=True) as other,
    ):
        other.execute("SELECT pg_advisory_lock(%s)", (REBUILD_LOCK_KEY,))
        with pytest.raises(RebuildInProgressError):
            rebuild(store, read_db)


def test_the_rebuild_refuses_to_run_before_the_schema_is_migrated(
    db_settings: DatabaseSettings,
) -> None:
    with store_for(db_settings) as store, pytest.raises(RuntimeError, match="alembic upgrade"):
        rebuild(store, db_settings)
