"""The live projection: applies a batch of events to the read tables in one transaction."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from common.events import PublicEvent
from projector.db import (
    LIVE,
    PROJECTION_LOCK_KEY,
    TableNames,
    load_rows,
    notify_progress,
    save_progress,
    save_rows,
)
from projector.handlers import apply_event, referenced_ids

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivered:
    """A decoded event and where it came from."""

    event: PublicEvent
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class BatchResult:
    applied: int
    duplicates: int
    gaps: int


class PostgresProjection:
    """One transaction per batch: shared projection lock, rows loaded FOR UPDATE, handlers, the
    changed rows, per-user positions and per-partition progress written, NOTIFY on commit."""

    def __init__(self, conninfo: str, tables: TableNames = LIVE) -> None:
        self._conninfo = conninfo
        self._tables = tables
        self._conn: psycopg.Connection[Any] | None = None

    def apply(self, batch: Sequence[Delivered]) -> BatchResult:
        conn = self._connection()
        try:
            with conn.transaction(), conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_xact_lock_shared(%s)", (PROJECTION_LOCK_KEY,))
                events = [d.event for d in batch]
                user_ids, task_ids = referenced_ids(events)
                rows = load_rows(cur, self._tables, user_ids, task_ids, for_update=True)
                for event in events:
                    apply_event(rows, event)
                save_rows(cur, self._tables, rows)
                save_progress(cur, _progress(batch))
                notify_progress(cur, rows.positions)
        except (psycopg.OperationalError, psycopg.InterfaceError):
            self.close()  # the connection may be broken: start afresh on the next attempt
            raise
        if rows.gaps:
            log.warning("events skipped: an earlier event is missing", extra={"gaps": rows.gaps})
        return BatchResult(
            applied=len(batch) - rows.duplicates - rows.gaps,
            duplicates=rows.duplicates,
            gaps=rows.gaps,
        )

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._conninfo, connect_timeout=5)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _progress(batch: Sequence[Delivered]) -> dict[tuple[str, int], tuple[int, int]]:
    progress: dict[tuple[str, int], tuple[int, int]] = {}
    for d in batch:
        key = (d.topic, d.partition)
        offset, position = progress.get(key, (-1, 0))
        progress[key] = (max(offset, d.offset), max(position, d.event.position))
    return progress
