"""Read-side test helpers: the schema via the real migrations, the projector in a thread or in a
subprocess, and snapshots of the read tables to compare (the fakes of the projector's ports are in
tests.support.consumer_fakes)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import psycopg
from alembic import command
from alembic.config import Config
from psycopg import sql

from consuming.loop import ConsumerLoop
from contracts.events import PublicEvent
from event_store.application import TodoStore
from event_store.domain.model import Task, User
from event_store.public import PUBLIC_TOPICS, to_public
from projector.bootstrap import build_projector
from projector.db import LIVE, TableNames
from projector.handlers import apply_event
from projector.rows import Rows, TaskEventRow
from projector.settings import ProjectorSettings
from runtime.settings import DatabaseSettings, KafkaSettings
from tests.support.infra import process_env
from tests.support.threads import loop_in_thread

ROOT = Path(__file__).parents[2]

# --- schema --------------------------------------------------------------------------------------


def alembic_config(db: DatabaseSettings) -> Config:
    config = Config(str(ROOT / "alembic.ini"))
    config.attributes["sqlalchemy_url"] = db.sqlalchemy_url
    config.attributes["configure_logger"] = False
    return config


def migrate(db: DatabaseSettings, revision: str = "head") -> None:
    """`alembic upgrade <revision>` against this database, exactly as an operator runs it."""
    command.upgrade(alembic_config(db), revision)


# --- expected state and snapshots ---------------------------------------------------------------


def store_events(store: TodoStore) -> list[PublicEvent]:
    """Every public event in the store, in store order (what the relay publishes)."""
    events: list[PublicEvent] = []
    position = 0
    while True:
        page = store.recorder.select_notifications(
            position, 5000, topics=PUBLIC_TOPICS, inclusive_of_start=False
        )
        if not page:
            return events
        position = page[-1].id
        events += [e for n in page if (e := to_public(store.mapper, n)) is not None]


def seed(store: TodoStore, users: int, tasks_per_user: int, seed: int = 7) -> None:
    """Many events quickly: many aggregates saved per transaction."""
    rng = random.Random(seed)
    for u in range(users):
        user = User.register(email=f"bulk{u}@example.com", password_hash="h")
        if rng.random() < 0.2:
            user.change_preferences(timezone="Asia/Kathmandu", digest_enabled=rng.random() < 0.5)
        aggregates: list[User | Task] = [user]
        for t in range(tasks_per_user):
            task = Task.create(user_id=user.id, title=f"task {t}")
            if rng.random() < 0.5:
                task.rename(user_id=user.id, title=f"renamed {t}")
            if rng.random() < 0.6:
                task.complete(user_id=user.id, done_at=datetime.now(UTC))
                if rng.random() < 0.3:
                    task.reopen(user_id=user.id)
            if rng.random() < 0.1:
                task.delete(user_id=user.id)
                if rng.random() < 0.5:
                    task.restore(user_id=user.id)
            aggregates.append(task)
        store.save(*aggregates)


Snapshot = dict[str, list[tuple[Any, ...]]]


def fold(events: Sequence[PublicEvent]) -> Snapshot:
    """The read tables these events should produce (the handlers, in memory)."""
    rows = Rows()
    for e in events:
        apply_event(rows, e)
    return {
        "users": sorted(u.as_tuple() for u in rows.users.values()),
        "tasks": sorted(t.as_tuple() for t in rows.tasks.values()),
        "task_events": sorted(history_tuple(e) for e in rows.task_events),
        "user_positions": sorted(rows.positions.items()),
    }


def expected_tables(store: TodoStore) -> Snapshot:
    """The read tables the store's history should produce, built WITHOUT the projector's handlers
    (so a handler bug shows up, instead of being folded into the expectation): each aggregate is
    loaded through the store (its own domain replays its events) and laid out in the read-model
    columns, with positions from the raw notification log."""
    positions: dict[UUID, int] = {}  # aggregate id -> notification id of its latest public event
    start = 0
    while page := store.recorder.select_notifications(
        start, 5000, topics=PUBLIC_TOPICS, inclusive_of_start=False
    ):
        positions.update((UUID(str(n.originator_id)), n.id) for n in page)
        start = page[-1].id
    users: list[tuple[Any, ...]] = []
    tasks: list[tuple[Any, ...]] = []
    owner_positions: dict[UUID, int] = {}
    for aggregate_id, position in positions.items():
        aggregate: Any = store.repository.get(aggregate_id)
        owner = aggregate.id if isinstance(aggregate, User) else aggregate.user_id
        owner_positions[owner] = max(position, owner_positions.get(owner, 0))
        if isinstance(aggregate, User):
            users.append(
                (
                    *(aggregate.id, aggregate.email, aggregate.created_on, aggregate.version),
                    *(position, aggregate.timezone, aggregate.digest_enabled),
                )
            )
        elif isinstance(aggregate, Task):
            tasks.append(
                (
                    *(aggregate.id, aggregate.user_id, aggregate.title, aggregate.done),
                    *(aggregate.created_on, aggregate.done_at, aggregate.version),
                    *(aggregate.deleted, position),
                )
            )
    return {
        "users": sorted(users),
        "tasks": sorted(tasks),
        # History rows say what each event changed, a notion only the handlers have: these come
        # from folding the public events (the rows and positions above do not).
        "task_events": fold(store_events(store))["task_events"],
        "user_positions": sorted(owner_positions.items()),
    }


def history_tuple(row: TaskEventRow) -> tuple[Any, ...]:
    """A history row as the database gives it back (changes as parsed JSON)."""
    return (*row.as_tuple()[:-1], row.changes)


def snapshot(db: DatabaseSettings, tables: TableNames = LIVE) -> Snapshot:
    """users, tasks, task_events and user_positions, every column, sorted by id (position)."""
    from projector.rows import TASK_COLUMNS, TASK_EVENT_COLUMNS, USER_COLUMNS

    result: Snapshot = {}
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        for key, table, columns in (
            ("users", tables.users, USER_COLUMNS),
            ("tasks", tables.tasks, TASK_COLUMNS),
            ("task_events", tables.task_events, TASK_EVENT_COLUMNS),
            ("user_positions", tables.user_positions, ("user_id", "position")),
        ):
            query = sql.SQL("SELECT {} FROM {} ORDER BY 1").format(
                sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(table)
            )
            result[key] = [tuple(r) for r in conn.execute(query)]
    return result


def wait_until(
    predicate: Callable[[], bool], timeout: float = 30.0, what: str = "condition"
) -> None:
    """Poll `predicate` until it holds; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def wait_for_tables(db: DatabaseSettings, expected: Snapshot, timeout: float = 60.0) -> None:
    last: list[Snapshot] = []

    def equal() -> bool:
        last[:] = [snapshot(db)]
        return last[0] == expected

    try:
        wait_until(equal, timeout, "the read tables to match the store")
    except AssertionError:
        actual = last[0] if last else {}
        diff = {k: (len(actual.get(k, [])), len(v)) for k, v in expected.items()}
        raise AssertionError(f"read tables never matched (rows actual/expected: {diff})") from None


# --- the projector, running ----------------------------------------------------------------------


def projector_settings(group: str, **overrides: Any) -> ProjectorSettings:
    return ProjectorSettings(
        **{
            "PROJECTOR_GROUP_ID": group,
            "PROJECTOR_POLL_TIMEOUT_SECONDS": 0.1,
            "PROJECTOR_SESSION_TIMEOUT_SECONDS": 6,
            **overrides,
        }
    )


@contextmanager
def running_projector(
    db: DatabaseSettings, kafka: KafkaSettings, group: str = "projector", **overrides: Any
) -> Iterator[ConsumerLoop]:
    """The real projector (Kafka consumer + PostgreSQL) in a background thread."""
    projector = build_projector(db, kafka, projector_settings(group, **overrides))
    try:
        with loop_in_thread(projector, "projector", insist_stopped=False):
            yield projector
    finally:
        projector.close()


def projector_env(
    db: DatabaseSettings, kafka: KafkaSettings, group: str, **extra: str
) -> dict[str, str]:
    return process_env(
        db,
        kafka,
        PROJECTOR_GROUP_ID=group,
        PROJECTOR_POLL_TIMEOUT_SECONDS="0.1",
        PROJECTOR_SESSION_TIMEOUT_SECONDS="6",
        **extra,
    )


def start_projector_process(
    db: DatabaseSettings, kafka: KafkaSettings, group: str, **extra: str
) -> subprocess.Popen[bytes]:
    """`python -m projector consume` as a real process (its JSON logs go to a pipe)."""
    return subprocess.Popen(
        [sys.executable, "-m", "projector", "consume"],
        cwd=ROOT,
        env=projector_env(db, kafka, group, **extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def stop_process(process: subprocess.Popen[bytes], timeout: float = 20) -> str:
    """SIGTERM, wait; returns what it logged."""
    if process.poll() is None:
        process.terminate()
    try:
        _, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
    return err.decode(errors="replace")


def log_lines(text: str) -> list[dict[str, Any]]:
    lines = []
    for line in text.splitlines():
        try:
            lines.append(json.loads(line))
        except ValueError:
            continue
    return lines


def applied_offsets(db: DatabaseSettings, topic: str) -> dict[int, int]:
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        rows = conn.execute(
            'SELECT partition, "offset" FROM projector_progress WHERE topic = %s', (topic,)
        )
        return {int(p): int(o) for p, o in rows}
