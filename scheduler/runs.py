"""The run ledger (`scheduler_runs`, created by migration 0002_mailer, per timezone since
0006_user_preferences): which batches have completed, so a batch runs once per (local date, zone)
and a scheduler that was down at a midnight knows to catch up when it starts.

A row's `timezone` is the zone whose users the batch covered, or `*` for a batch of every user
(`python -m scheduler run --date D`). Replicas serialise on a PostgreSQL advisory lock per date:
the second replica waits for the first to finish, then finds its zones completed and does nothing.
The lock dies with its connection, so a crashed replica never blocks the others (and the digest
ids keep a re-run harmless anyway).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import date
from typing import Any

import psycopg

from contracts.read_model import column_list, scheduler_runs
from scheduler.batch import BatchSummary

_LOCK_CLASS = 0x0D16E57  # arbitrary, constant: "digest batch" (first key of the advisory lock)
EVERY_ZONE = "*"

# The ledger's statements, written against contracts.read_model's declaration of the table: a
# column renamed or dropped there fails here at import, not at the first midnight.
_RUNS = scheduler_runs.name
_KEY = column_list(scheduler_runs, "digest_date", "timezone")
_DATE, _ZONE = _KEY.split(", ")
_COUNTS = column_list(scheduler_runs, "users", "recorded", "already_recorded", "skipped")
_COMPLETED_ZONES = (
    f"select {_ZONE} from {_RUNS} where {_DATE} = %s and {_ZONE} = any(%s)"  # noqa: S608
    f" and {column_list(scheduler_runs, 'completed_at')} is not null"
)
_MARK_STARTED = (
    f"insert into {_RUNS} ({_KEY}) select %s, unnest(%s::text[])"
    f" on conflict ({_KEY}) do update set {column_list(scheduler_runs, 'started_at')} = now(),"
    f" {column_list(scheduler_runs, 'attempts')} = {_RUNS}.attempts + 1"
)
_MARK_COMPLETED = (
    f"update {_RUNS} set completed_at = now(), "  # noqa: S608
    + ", ".join(f"{name} = %s" for name in _COUNTS.split(", "))
    + f" where {_DATE} = %s and {_ZONE} = any(%s)"
)


class RunLedger:
    """Ledger operations on one connection that holds the date's advisory lock."""

    def __init__(self, conn: psycopg.Connection[Any], digest_date: date) -> None:
        self._conn = conn
        self.digest_date = digest_date

    def is_completed(self) -> bool:
        """Whether the batch of every user for the date completed."""
        return EVERY_ZONE in self.completed_zones([EVERY_ZONE])

    def completed_zones(self, zones: Sequence[str]) -> set[str]:
        rows = self._conn.execute(_COMPLETED_ZONES, (self.digest_date, list(zones))).fetchall()
        return {r[0] for r in rows}

    def mark_started(self, zones: Sequence[str] = (EVERY_ZONE,)) -> None:
        self._conn.execute(_MARK_STARTED, (self.digest_date, list(zones)))

    def mark_completed(self, summary: BatchSummary, zones: Sequence[str] = (EVERY_ZONE,)) -> None:
        """Zones completed by one batch share its counts."""
        self._conn.execute(
            _MARK_COMPLETED,
            (
                summary.users,
                summary.recorded,
                summary.already_recorded,
                summary.skipped_no_tasks,
                self.digest_date,
                list(zones),
            ),
        )


@contextmanager
def locked_run(conninfo: str, digest_date: date) -> Iterator[RunLedger]:
    """Hold the date's batch lock (waiting for another holder to finish) for the block."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        # Session lock: released when this connection closes (normally or because we died).
        conn.execute("select pg_advisory_lock(%s, %s)", (_LOCK_CLASS, digest_date.toordinal()))
        yield RunLedger(conn, digest_date)
