"""A PostgreSQL restart under load, on a private cluster: the relay, projector, mailer and scheduler
processes lose every connection mid-work and resume by themselves; nothing is lost (every store
event on Kafka, the read tables equal to the store, every digest mailed once)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from contracts.events import PublicEvent
from event_store.application import TodoStore
from runtime.settings import DatabaseSettings, KafkaSettings
from scheduler.runs import _LOCK_CLASS
from tests.support.chaos_checks import judge_kafka, judge_mail, table_rows, task_states
from tests.support.digest import ReadUser, Task, insert_read_model
from tests.support.private_infra import private_postgres
from tests.support.processes import worker_env
from tests.support.read_side import migrate, store_events, wait_until
from tests.support.services import running, service, wait_for_http
from tests.support.smtp import running_smtp_server
from tests.support.store_load import StoreLoad
from tests.support.system import store_for

pytestmark = pytest.mark.integration

POSTGRES_PORT = 24054
HEALTH = {"relay": 24021, "projector": 24022, "scheduler": 24023, "mailer": 24024}
DOWN_SECONDS = 5.0
READ_ONLY_USERS = 1500  # digest recipients written straight into the read tables: a long batch


class Load(StoreLoad):
    """Commands straight into the store, from a thread, until stopped; a command that fails while
    the database is away is counted and the load goes on (the store says what happened)."""

    def __init__(self, store: TodoStore, users: int) -> None:
        super().__init__(store, interval=0.02)
        emails = [f"load{i}@example.com" for i in range(users)]
        self.users = [store.register_user(email, "h").aggregate.id for email in emails]
        self.failures = 0

    def step(self, n: int) -> None:
        user = self.users[n % len(self.users)]
        try:
            task = self.store.create_task(user, f"load task {n}").aggregate
            if n % 3 == 0:
                self.store.update_task(user, task.id, done=True)
            self.commands += 1
        except Exception:
            self.failures += 1
            time.sleep(0.2)


def today_completed(db: DatabaseSettings) -> bool:
    today = datetime.now(UTC).date()
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        row = conn.execute(
            "select completed_at is not null from scheduler_runs where digest_date = %s", (today,)
        ).fetchone()
    return bool(row and row[0])


def batch_waiting(db: DatabaseSettings) -> bool:
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        row = conn.execute(
            "select count(*) from pg_locks where locktype = 'advisory' and not granted"
        ).fetchone()
    return bool(row and row[0])


def every_worker_ready() -> None:
    for port in HEALTH.values():
        wait_for_http(f"http://127.0.0.1:{port}/ready", timeout=60)


def test_after_a_postgres_restart_every_worker_resumes_by_itself_and_nothing_is_lost(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    with private_postgres(POSTGRES_PORT) as postgres, running_smtp_server() as smtp:
        db = postgres.settings
        migrate(db)
        recipients = [ReadUser(f"r{i}@example.com", [Task("t")]) for i in range(READ_ONLY_USERS)]
        insert_read_model(db, recipients)
        env = worker_env(
            smtp,
            SCHEDULER_RETRY_SECONDS="1",
            SCHEDULER_PAGE_SIZE="100",
            **{f"{n.upper()}_HEALTH_PORT": str(p) for n, p in HEALTH.items()},
        )
        workers = [service(n, db, kafka_settings, tmp_path, **env) for n in HEALTH]
        # Hold today's batch lock: the scheduler's catch-up batch waits for it, mid-run, when
        # the restart comes (and the restart frees it, as it ends our session).
        blocker = psycopg.connect(db.conninfo, autocommit=True)
        today = datetime.now(UTC).date()
        blocker.execute("select pg_advisory_lock(%s, %s)", (_LOCK_CLASS, today.toordinal()))
        with store_for(db) as store, running(*workers), Load(store, users=6) as load:
            every_worker_ready()
            wait_until(lambda: batch_waiting(db), 60, "the scheduler's batch to wait for its lock")
            with postgres.outage():
                time.sleep(DOWN_SECONDS)
            back = time.monotonic()
            blocker.close()
            time.sleep(3)  # load after the restart too
            load.stop()
            every_worker_ready()
            ready_after = time.monotonic() - back
            wait_until(lambda: today_completed(db), 120, "the scheduler to finish its batch")
            batch_after = time.monotonic() - back

            events = store_events(store)
            on_kafka = judge_kafka(kafka_settings, {e.position for e in events}, timeout=120)
            expected = task_states(events)
            wait_until(lambda: real_rows(db, events) == expected, 120, "the read tables")
            digests = sum(1 for e in events if e.type == "email.daily_digest.requested")
            smtp.wait_for(digests, timeout=120)
            on_mail = judge_mail(events, smtp.settle(quiet=2.0))
            alive = {w.name: w.alive for w in workers}
        logs = {w.name: w.log() for w in workers}

    print(
        f"\nPostgreSQL down {postgres.outages[0]:.1f}s; workers ready {ready_after:.1f}s after;"
        f" load {load.commands} commands, {load.failures} failed during the outage;"
        f" {digests} digests; batch completed {batch_after:.1f}s after, having failed"
        f" {logs['scheduler'].count('will retry')} times (dead pooled connections)"
    )
    assert alive == dict.fromkeys(HEALTH, True), "no worker died: each one resumed by itself"
    assert load.failures > 0, "the restart happened under load"
    assert "will retry" in logs["scheduler"], "the restart broke the waiting batch: retried"
    assert not on_kafka.missing and not on_kafka.order_violations
    assert digests >= READ_ONLY_USERS
    assert on_mail.mailed == digests and not on_mail.emailed_twice
    assert on_mail.resent_identical == 0


def real_rows(db: DatabaseSettings, events: list[PublicEvent]) -> dict[object, object]:
    """The tasks table, less the rows the test wrote straight into it (digest recipients)."""
    store_users = {e.user_id for e in events if e.type == "user.registered"}
    return {k: v for k, v in table_rows(db).items() if v[1] in store_users}
