"""The digest batch against real PostgreSQL: read tables in, DailyDigest records in the store."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import psycopg
import pytest

from event_store.application import TodoStore
from event_store.domain.model import DailyDigest, digest_id_for
from runtime.settings import DatabaseSettings
from scheduler.batch import BatchFailedError
from scheduler.service import DigestService
from tests.support.digest import (
    ROOT,
    ReadUser,
    SeededReadSide,
    Task,
    insert_read_model,
    migrated,
    run_batch,
    scheduler_settings,
)
from tests.support.system import store_for

pytestmark = pytest.mark.integration
DAY = date(2026, 11, 23)


def digest_of(store: TodoStore, user: ReadUser, day: date = DAY) -> DailyDigest | None:
    recorded = store.recorder.select_events(digest_id_for(user.id, day))
    if not recorded:
        return None
    digest: object = store.repository.get(digest_id_for(user.id, day))
    assert isinstance(digest, DailyDigest)
    assert len(recorded) == 1, "a digest is recorded once, never changed"
    return digest


def digest_count(store: TodoStore) -> int:
    topic = f"{DailyDigest.Requested.__module__}:{DailyDigest.Requested.__qualname__}"
    return len(store.recorder.select_notifications(1, 100_000, topics=[topic]))


def ledger(db: DatabaseSettings, day: date = DAY) -> tuple[Any, ...] | None:
    with psycopg.connect(db.conninfo) as conn:
        return conn.execute(
            "select completed_at is not null, attempts, users, recorded, already_recorded, skipped"
            " from scheduler_runs where digest_date = %s",
            (day,),
        ).fetchone()


@pytest.fixture
def db(db_settings: DatabaseSettings) -> DatabaseSettings:
    return migrated(db_settings)


ADA = ReadUser(
    "ada@example.com",
    [
        Task("write <b>the</b> report & send it"),
        Task("water the plants", done=True),
        Task("deleted and undone", deleted=True),
        Task("call the bank"),
    ],
)
BOB = ReadUser("bob@example.com", [Task("all done", done=True)])
CAROL = ReadUser("carol@example.com", [])  # no tasks at all
DAVE = ReadUser("dave@example.com", [Task("gone", deleted=True)])  # only deleted tasks


def test_the_batch_records_one_digest_per_user_with_tasks_and_skips_users_without_any(
    db: DatabaseSettings,
) -> None:
    insert_read_model(db, [ADA, BOB, CAROL, DAVE])
    with store_for(db) as store:
        summary = run_batch(db, store, DAY)
        ada, bob = digest_of(store, ADA), digest_of(store, BOB)
        carol, dave = digest_of(store, CAROL), digest_of(store, DAVE)

    assert summary is not None
    assert (summary.users, summary.recorded, summary.skipped_no_tasks) == (4, 2, 2)
    assert ada is not None and bob is not None
    assert (ada.email, ada.digest_date, ada.total, ada.done) == ("ada@example.com", DAY, 3, 1)
    assert ada.undone_titles == ["write <b>the</b> report & send it", "call the bank"]
    assert (bob.total, bob.done, bob.undone_titles) == (1, 1, [])
    assert carol is None and dave is None
    assert ledger(db) == (True, 1, 4, 2, 0, 2)


def test_undone_titles_are_oldest_first_and_capped_while_the_stats_count_every_task(
    db: DatabaseSettings,
) -> None:
    user = ReadUser("many@example.com", [Task(f"task {i:02}") for i in range(30)])
    insert_read_model(db, [user])
    with store_for(db) as store:
        run_batch(db, store, DAY, SCHEDULER_MAX_UNDONE_TITLES=5)
        digest = digest_of(store, user)

    assert digest is not None
    assert (digest.total, digest.done) == (30, 0)
    assert digest.undone_titles == [f"task {i:02}" for i in range(5)]


def test_the_batch_reads_users_in_pages_without_missing_or_repeating_anyone(
    db: DatabaseSettings,
) -> None:
    users = [ReadUser(f"user{i}@example.com", [Task(f"t{i}")]) for i in range(23)]
    insert_read_model(db, users)
    with store_for(db) as store:
        summary = run_batch(db, store, DAY, SCHEDULER_PAGE_SIZE=5)
        digests = [digest_of(store, u) for u in users]

    assert summary is not None and (summary.users, summary.recorded) == (23, 23)
    assert [d.undone_titles if d else None for d in digests] == [[f"t{i}"] for i in range(23)]


def test_running_the_batch_twice_for_the_same_date_records_no_second_digest(
    db: DatabaseSettings,
) -> None:
    insert_read_model(db, [ADA, BOB])
    with store_for(db) as store:
        first = run_batch(db, store, DAY)
        second = run_batch(db, store, DAY)
        count = digest_count(store)

    assert first is not None and second is not None
    assert (first.recorded, first.already_recorded) == (2, 0)
    assert (second.recorded, second.already_recorded) == (0, 2)
    assert count == 2


def test_two_replicas_firing_together_record_each_digest_once(db: DatabaseSettings) -> None:
    users = [ReadUser(f"r{i}@example.com", [Task("x")]) for i in range(200)]
    insert_read_model(db, users)
    midnight = datetime(2026, 11, 23, 0, 0, 1, tzinfo=UTC)
    results: list[Any] = []
    with store_for(db) as store_a, store_for(db) as store_b:
        replicas = [
            DigestService(
                scheduler_settings(), db, store, SeededReadSide(store), clock=lambda: midnight
            )
            for store in (store_a, store_b)
        ]
        threads = [
            threading.Thread(target=lambda s=s: results.append(s.run_due())) for s in replicas
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        count = digest_count(store_a)

    ran = [r for r in results if r is not None]
    assert len(results) == 2 and len(ran) == 1, "the second replica finds the date completed"
    assert ran[0].recorded == 200
    assert count == 200


class FailingAfter:
    """The real store, through the batch's real (bulk) path, killed after `n` digests: the page
    that crosses `n` records its first part, then the process dies, like a scheduler killed
    between two transactions."""

    def __init__(self, store: TodoStore, n: int) -> None:
        self._store = store
        self._left = n
        self._lock = threading.Lock()

    def request_daily_digests(self, digest_date: date, requests: Sequence[Any]) -> Any:
        with self._lock:
            allowed, self._left = self._left, max(0, self._left - len(requests))
        if allowed >= len(requests):
            return self._store.request_daily_digests(digest_date, requests)
        if allowed:
            self._store.request_daily_digests(digest_date, requests[:allowed])
        raise ConnectionError("scheduler killed")

    def head_position(self) -> int:
        return self._store.head_position()


def test_a_restart_mid_batch_completes_the_date_without_a_second_digest(
    db: DatabaseSettings,
) -> None:
    users = [ReadUser(f"m{i}@example.com", [Task("x")]) for i in range(60)]
    insert_read_model(db, users)
    with store_for(db) as store:
        with pytest.raises(BatchFailedError):
            run_batch(db, FailingAfter(store, 25), DAY)
        interrupted = ledger(db)
        summary = run_batch(db, store, DAY)
        count = digest_count(store)

    assert interrupted is not None and interrupted[0] is False, "not marked completed"
    assert summary is not None
    assert (summary.recorded, summary.already_recorded) == (35, 25)
    assert count == 60


def test_a_scheduler_down_at_midnight_catches_up_on_start_and_only_once(
    db: DatabaseSettings,
) -> None:
    insert_read_model(db, [ADA, BOB])
    mid_morning = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
    with store_for(db) as store:
        fresh = SeededReadSide(store)
        service = DigestService(scheduler_settings(), db, store, fresh, clock=lambda: mid_morning)
        caught_up = service.run_due()  # what the catch-up job does on start
        restarted = DigestService(scheduler_settings(), db, store, fresh, clock=lambda: mid_morning)
        again = restarted.run_due()
        count = digest_count(store)

    assert caught_up is not None and caught_up.digest_date == DAY and caught_up.recorded == 2
    assert again is None, "today's batch already completed: nothing to catch up"
    assert count == 2


def run_cli(db: DatabaseSettings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "ENVIRONMENT": "test",
        "POSTGRES_HOST": db.POSTGRES_HOST,
        "POSTGRES_PORT": str(db.POSTGRES_PORT),
        "POSTGRES_USER": db.POSTGRES_USER,
        "POSTGRES_PASSWORD": db.POSTGRES_PASSWORD.get_secret_value(),
        "POSTGRES_DB": db.POSTGRES_DB,
        # The test writes the read tables itself: no relay or projector to wait for.
        "SCHEDULER_READ_SIDE_WAIT_SECONDS": "0",
    }
    return subprocess.run(
        [sys.executable, "-m", "scheduler", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_operator_cli_runs_a_date_now_with_a_summary_and_is_idempotent(
    db: DatabaseSettings,
) -> None:
    insert_read_model(db, [ADA, BOB, CAROL])

    first = run_cli(db, "run", "--date", "2026-11-23")
    second = run_cli(db, "run", "--date", "2026-11-23")

    assert first.returncode == 0, first.stderr
    assert "3 users, 2 digests recorded, 0 already recorded, 1 skipped (no tasks)" in first.stdout
    assert "100%" in first.stderr, "progress is shown"
    assert second.returncode == 0, second.stderr
    assert "0 digests recorded, 2 already recorded" in second.stdout
