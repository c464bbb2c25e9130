"""Digest test helpers: the real schema (Alembic), read-table rows, and the digest processes wired
to a test's database, topics and SMTP server."""

from __future__ import annotations

import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg

from consuming.loop import ConsumerLoop
from contracts.events import DailyDigestRequested
from event_store.application import TodoStore
from mailer.bootstrap import build_mailer
from mailer.settings import MailerSettings
from runtime.settings import DatabaseSettings, HealthSettings, KafkaSettings
from scheduler.batch import BatchSummary
from scheduler.bootstrap import bootstrap
from scheduler.settings import SchedulerSettings
from tests.support.infra import consume_events, process_env
from tests.support.read_side import migrate
from tests.support.smtp import SmtpServer
from tests.support.system import running_relay, store_for
from tests.support.threads import loop_in_thread

ROOT = Path(__file__).parents[2]


@dataclass
class Task:
    title: str
    done: bool = False
    deleted: bool = False


@dataclass
class ReadUser:
    email: str
    tasks: Sequence[Task] = ()
    id: UUID = field(default_factory=uuid.uuid4)
    timezone: str = "UTC"
    digest_enabled: bool = True


def migrated(db: DatabaseSettings, users: Sequence[ReadUser] = ()) -> DatabaseSettings:
    """`db` with the real schema, and `users` (if any) in its read tables."""
    migrate(db)
    if users:
        insert_read_model(db, users)
    return db


def insert_read_model(db: DatabaseSettings, users: Sequence[ReadUser]) -> None:
    """Rows as the projector would have written them (the scheduler only reads them)."""
    base = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
    user_rows: list[tuple[Any, ...]] = []
    task_rows: list[tuple[Any, ...]] = []
    for user in users:
        user_rows.append((user.id, user.email, base, 1, 1, user.timezone, user.digest_enabled))
        for i, task in enumerate(user.tasks):
            created = base + timedelta(minutes=i)
            task_rows.append(
                (
                    uuid.uuid4(),
                    user.id,
                    task.title,
                    task.done,
                    created,
                    created if task.done else None,
                    1,
                    task.deleted,
                    1,
                )
            )
    with psycopg.connect(db.conninfo) as conn, conn.cursor() as cur:
        cur.executemany(
            "insert into users (id, email, created_at, version, position, timezone,"
            " digest_enabled) values (%s, %s, %s, %s, %s, %s, %s)",
            user_rows,
        )
        cur.executemany(
            "insert into tasks (id, user_id, title, done, created_at, done_at, version, deleted,"
            " position) values (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            task_rows,
        )


def processed_event_ids(db: DatabaseSettings) -> set[UUID]:
    with psycopg.connect(db.conninfo) as conn:
        return {r[0] for r in conn.execute("select event_id from processed_events").fetchall()}


class SeededReadSide:
    """The read side of tests that write the read tables themselves (insert_read_model) instead of
    running the relay and projector: as fresh as the store, so the batch has nothing to wait for."""

    def __init__(self, store: Any) -> None:
        self._store = store

    def applied_position(self) -> int:
        return int(self._store.head_position())


def scheduler_settings(**overrides: Any) -> SchedulerSettings:
    return SchedulerSettings(**overrides)


def run_batch(
    db: DatabaseSettings, recorder: Any, digest_date: date, **overrides: Any
) -> BatchSummary | None:
    """The operator's `python -m scheduler run --date` path, in-process (the same bootstrap)."""
    settings = scheduler_settings(**overrides)
    fresh = SeededReadSide(recorder)
    with bootstrap(settings, db, HealthSettings(), store=recorder, read_side=fresh) as process:
        return process.service.run_date(digest_date, skip_if_completed=False)


class DigestSystem:
    """The write side of the digest flow, for real: read tables → scheduler batch → store → relay
    → Kafka topic."""

    def __init__(self, db: DatabaseSettings, kafka: KafkaSettings, store: TodoStore) -> None:
        self.db = db
        self.kafka = kafka
        self.store = store

    def add_users(self, users: Sequence[ReadUser]) -> None:
        insert_read_model(self.db, users)

    def run_batch(self, digest_date: date) -> BatchSummary:
        summary = run_batch(self.db, self.store, digest_date)
        assert summary is not None
        return summary

    def digest_events(self, count: int, timeout: float = 30.0) -> list[DailyDigestRequested]:
        """The digest events on the topic, once at least `count` are there."""

        def digests(events: Sequence[Any]) -> list[DailyDigestRequested]:
            return [e for e in events if isinstance(e, DailyDigestRequested)]

        events = consume_events(
            self.kafka, until=lambda es: len(digests(es)) >= count, timeout=timeout
        )
        return digests(events)


@contextmanager
def digest_system(db: DatabaseSettings, kafka: KafkaSettings) -> Iterator[DigestSystem]:
    migrate(db)
    with store_for(db) as store, running_relay(store, db, kafka):
        yield DigestSystem(db, kafka, store)


def mailer_settings(smtp: SmtpServer, **overrides: Any) -> MailerSettings:
    values: dict[str, Any] = {
        "SMTP_HOST": smtp.host,
        "SMTP_PORT": smtp.port,
        "MAILER_GROUP_ID": f"mailer-{uuid.uuid4().hex[:8]}",
        "MAILER_RETRY_INITIAL_SECONDS": 0.05,
        "MAILER_RETRY_MAX_SECONDS": 0.5,
        **overrides,
    }
    return MailerSettings(**values)


@contextmanager
def running_mailer(
    db: DatabaseSettings, kafka: KafkaSettings, settings: MailerSettings
) -> Iterator[ConsumerLoop]:
    """The real mailer (Kafka consumer + SMTP) in a background thread."""
    with loop_in_thread(build_mailer(settings, db, kafka), "mailer") as mailer:
        yield mailer


def mailer_process(
    db: DatabaseSettings, kafka: KafkaSettings, settings: MailerSettings, **env: str
) -> subprocess.Popen[str]:
    """`python -m mailer` as a real OS process (so a test can SIGKILL it)."""
    mailer_values = {k: str(v) for k, v in settings.model_dump().items() if v is not None}
    values = process_env(
        db, kafka, **{"ENVIRONMENT": "test", "LOG_LEVEL": "INFO", **mailer_values, **env}
    )
    values["SMTP_PASSWORD"] = settings.SMTP_PASSWORD.get_secret_value()
    return subprocess.Popen(
        [sys.executable, "-m", "mailer"],
        cwd=ROOT,
        env=values,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_log(process: subprocess.Popen[str], text: str, timeout: float = 60.0) -> list[str]:
    """Read the process's stderr until a line contains `text`; returns the lines read."""
    assert process.stderr is not None
    lines: list[str] = []
    found = threading.Event()

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            lines.append(line)
            if text in line:
                found.set()
                return

    threading.Thread(target=read, daemon=True).start()
    if not found.wait(timeout):
        process.kill()
        raise AssertionError(f"{text!r} not logged within {timeout}s:\n{''.join(lines)[-4000:]}")
    return lines
