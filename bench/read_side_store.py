"""The rebuild benchmark's store (bench/bench_read_side.py): events generated in the scratch
database, counted, and vacuumed as a store in service would be."""

from __future__ import annotations

import random
import sys
import time
from datetime import UTC, datetime
from typing import Any

import psycopg

from runtime.settings import DatabaseSettings


def generate(db: DatabaseSettings, target: int) -> int:
    """`target` public events (about): users with 200 tasks each, saved 201 aggregates at a time."""
    from event_store.application import TodoStore, store_env
    from event_store.domain.model import Task, User

    store = TodoStore(env=store_env(db))
    rng = random.Random(42)
    written, u = 0, 0
    started = time.perf_counter()
    try:
        while written < target:
            user = User.register(email=f"user{u}@bench.example", password_hash="x")
            aggregates: list[Any] = [user]
            written += 1
            for i in range(200):
                task = Task.create(user_id=user.id, title=f"task {i} of user {u}")
                written += 1
                if rng.random() < 0.5:
                    task.rename(user_id=user.id, title=f"renamed task {i}")
                    written += 1
                if rng.random() < 0.7:
                    task.complete(user_id=user.id, done_at=datetime.now(UTC))
                    written += 1
                    if rng.random() < 0.3:
                        task.reopen(user_id=user.id)
                        written += 1
                if rng.random() < 0.1:
                    task.delete(user_id=user.id)
                    written += 1
                aggregates.append(task)
            store.save(*aggregates)
            u += 1
            if u % 200 == 0:
                print(f"  generated {written:,} events", file=sys.stderr)
    finally:
        store.close()
    print(f"  generated {written:,} events in {time.perf_counter() - started:.1f} s")
    return written


def public_count(db: DatabaseSettings) -> int:
    from event_store.public import PUBLIC_TOPICS

    with psycopg.connect(db.conninfo) as conn:
        if conn.execute("SELECT to_regclass('todostore_events')").fetchone() == (None,):
            return 0
        row = conn.execute(
            "SELECT count(*) FROM todostore_events WHERE topic = ANY(%s)", (list(PUBLIC_TOPICS),)
        ).fetchone()
        return int(row[0]) if row else 0


def vacuum_analyse(db: DatabaseSettings) -> None:
    """A freshly written store has no visibility map and stale statistics: every scan would check
    each row's commit status (and set hint bits) and the planner would guess. Measure what a store
    in service looks like once autovacuum has been by."""
    started = time.perf_counter()
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE todostore_events")
    print(f"  VACUUM ANALYZE todostore_events in {time.perf_counter() - started:.1f} s")
