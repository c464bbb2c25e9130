"""The live projection: applies a batch of events to the read tables in one transaction, parking
(consuming.parking) in that same transaction the poison messages and every event of an aggregate
that already has one parked, so rows, progress and parked messages commit or vanish together."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import psycopg

from consuming import parking
from consuming.batch import BatchResult, Delivered
from contracts.dead_letters import DeadLetter, LetterKind, sequence_id
from projector.db import (
    LIVE,
    PROJECTION_LOCK_KEY,
    TableNames,
    load_rows,
    save_batch,
)
from projector.handlers import apply_event, referenced_ids
from projector.rows import Rows

log = logging.getLogger(__name__)

LOCK_SHARED = "SELECT pg_advisory_xact_lock_shared(%s)"
# After the probe found something parked, how long apply() takes the careful path before trying
# the two-round-trip one again (parked rows usually stay until an operator replays them).
SPECULATION_PAUSE_SECONDS = 10.0


class _SomethingParkedError(Exception):
    """Rolls the speculative transaction back (see _apply_if_nothing_parked)."""


class PostgresProjection:
    """One transaction per batch: shared projection lock, rows loaded FOR UPDATE, handlers, the
    changed rows, per-user positions and per-partition progress written, NOTIFY on commit."""

    def __init__(self, conninfo: str, consumer: str, tables: TableNames = LIVE) -> None:
        self._conninfo = conninfo
        self._consumer = consumer
        self._tables = tables
        self._conn: psycopg.Connection[Any] | None = None
        self._next_speculation = 0.0  # when apply() may next try _apply_if_nothing_parked

    def apply(self, batch: Sequence[Delivered], poison: Sequence[DeadLetter] = ()) -> BatchResult:
        """Apply `batch` and park `poison` (and whatever must wait behind it), atomically."""
        if not poison and time.monotonic() >= self._next_speculation:
            try:
                result = self._apply_if_nothing_parked(batch)
            except (psycopg.OperationalError, psycopg.InterfaceError):
                self.close()
                raise
            if result is not None:
                return result
            self._next_speculation = time.monotonic() + SPECULATION_PAUSE_SECONDS
        conn = self._connection()
        try:
            # Pipeline mode: statements whose results are not needed yet go out together (BEGIN
            # with the lock and the parked-rows probe; the writes, one statement, with COMMIT):
            # three round trips a batch; an error still surfaces as the statement's own exception.
            with conn.pipeline(), conn.transaction(), conn.cursor() as cur:
                cur.execute(LOCK_SHARED, (PROJECTION_LOCK_KEY,))
                ids = [sequence_id(d.event) for d in batch]
                ids += [p.aggregate_id for p in poison if p.aggregate_id]
                held = parking.blockers(cur, self._consumer, ids)
                to_apply, to_park = sort_out(self._consumer, batch, poison, held)
                user_ids, task_ids = referenced_ids(d.event for d in to_apply)
                rows = load_rows(cur, self._tables, user_ids, task_ids, for_update=True)
                for delivered in to_apply:
                    apply_event(rows, delivered.event)
                parked = parking.park(cur, to_park)
                save_batch(cur, self._tables, rows, _progress(batch, poison))
        except (psycopg.OperationalError, psycopg.InterfaceError):
            self.close()  # the connection may be broken: start afresh on the next attempt
            raise
        return _result(rows, len(to_apply), parked)

    def _apply_if_nothing_parked(self, batch: Sequence[Delivered]) -> BatchResult | None:
        """The usual case in two round trips instead of three: the parked-rows probe goes out
        with the row loads (BEGIN, the lock, the probe and the loads; then the writes with
        COMMIT). If the probe finds anything parked for this consumer, nothing is written and
        None is returned (the transaction rolled back, its row locks released without having
        waited for any dead-letter row, so no lock-order inversion with `dlq replay`); the caller
        then takes the careful path, and speculates again only after SPECULATION_PAUSE_SECONDS."""
        conn = self._connection()
        user_ids, task_ids = referenced_ids(d.event for d in batch)
        try:
            with conn.pipeline(), conn.transaction(), conn.cursor() as cur, conn.cursor() as probe:
                cur.execute(LOCK_SHARED, (PROJECTION_LOCK_KEY,))
                probe.execute(parking.ANY_PARKED, (self._consumer,))
                # The loads are read first: the lock, the probe and the loads in one round trip.
                rows = load_rows(cur, self._tables, user_ids, task_ids, for_update=True)
                found = probe.fetchone()
                if found is None or found[0]:
                    raise _SomethingParkedError
                for delivered in sorted(batch, key=lambda d: d.where):  # as sort_out orders them
                    apply_event(rows, delivered.event)
                save_batch(cur, self._tables, rows, _progress(batch, ()))
        except _SomethingParkedError:
            return None
        return _result(rows, len(batch), [])

    def _connection(self) -> psycopg.Connection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self._conninfo, connect_timeout=5)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def sort_out(
    consumer: str,
    batch: Sequence[Delivered],
    poison: Sequence[DeadLetter],
    held: parking.Blockers,
) -> tuple[list[Delivered], list[DeadLetter]]:
    """In offset order: poison is parked and blocks its aggregate; an event behind a parked
    message of its aggregate is parked too; the rest is applied."""
    items: list[Delivered | DeadLetter] = sorted([*batch, *poison], key=lambda i: i.where)
    to_apply: list[Delivered] = []
    to_park: list[DeadLetter] = []
    for item in items:
        if isinstance(item, DeadLetter):
            to_park.append(item)
            held.add(item.aggregate_id, item.where)
        elif head := held.head(sequence_id(item.event), item.where):
            letter = item.letter(consumer, "projector", "", LetterKind.PARKED)
            to_park.append(letter.parked_behind(head))
        else:
            to_apply.append(item)
    return to_apply, to_park


def _result(rows: Rows, applied: int, parked: list[DeadLetter]) -> BatchResult:
    """What a committed batch did (`applied`: events handed to the handlers)."""
    if rows.gaps:
        log.warning("events skipped: an earlier event is missing", extra={"gaps": rows.gaps})
    return BatchResult(
        handled=applied - rows.duplicates - rows.gaps,
        duplicates=rows.duplicates,
        gaps=rows.gaps,
        parked=parked,
    )


def _progress(
    batch: Sequence[Delivered], poison: Sequence[DeadLetter]
) -> dict[tuple[str, int], tuple[int, int]]:
    progress: dict[tuple[str, int], tuple[int, int]] = {}
    for topic, partition, offset, position in [
        *((d.topic, d.partition, d.offset, d.event.position) for d in batch),
        *((p.topic, p.partition, p.offset, 0) for p in poison),
    ]:
        last_offset, last_position = progress.get((topic, partition), (-1, 0))
        progress[topic, partition] = (max(last_offset, offset), max(last_position, position))
    return progress
