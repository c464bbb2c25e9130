"""The run ledger (`scheduler_runs`, created by migration 0002_mailer): which dates' batches have
completed, so a scheduler that was down at 00:00 knows to catch up when it starts.

Replicas serialise on a PostgreSQL advisory lock per date: the second replica waits for the first
to finish, then finds the date completed and does nothing. The lock dies with its connection, so a
crashed replica never blocks the others (and the digest ids keep a re-run harmless anyway).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import psycopg

from scheduler.batch import BatchSummary

_LOCK_CLASS = 0x0D16E57  # arbitrary, constant: "digest batch" (first key of the advisory lock)


class RunLedger:
    """Ledger operations on one connection that holds the date's advisory lock."""

    def __init__(self, conn: psycopg.Connection[Any], digest_date: date) -> None:
        self._conn = conn
        self.digest_date = digest_date

    def is_completed(self) -> bool:
        row = self._conn.execute(
            "select completed_at is not null from scheduler_runs where digest_date = %s",
            (self.digest_date,),
        ).fetchone()
        return bool(row and row[0])

    def mark_started(self) -> None:
        self._conn.execute(
            "insert into scheduler_runs (digest_date) values (%s)"
            " on conflict (digest_date) do update set started_at = now(), attempts ="
            " scheduler_runs.attempts + 1",
            (self.digest_date,),
        )

    def mark_completed(self, summary: BatchSummary) -> None:
        self._conn.execute(
            "update scheduler_runs set completed_at = now(), users = %s, recorded = %s,"
            " already_recorded = %s, skipped = %s where digest_date = %s",
            (
                summary.users,
                summary.recorded,
                summary.already_recorded,
                summary.skipped_no_tasks,
                self.digest_date,
            ),
        )


@contextmanager
def locked_run(conninfo: str, digest_date: date) -> Iterator[RunLedger]:
    """Hold the date's batch lock (waiting for another holder to finish) for the block."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        # Session lock: released when this connection closes (normally or because we died).
        conn.execute("select pg_advisory_lock(%s, %s)", (_LOCK_CLASS, digest_date.toordinal()))
        yield RunLedger(conn, digest_date)
