"""The projector's SQL: load the rows a batch touches, write back what it changed, record progress.

Written for a set of table names (`LIVE`, or the rebuild's fresh copies `REBUILD`), so the live
projector and the rebuild share every statement. Writes are set-based (one `unnest` statement per
table per batch) and guarded by the row version, so a stale writer can never move a row backwards.
The statements themselves, composed from contracts.read_model's declaration and rendered once,
are in projector.statements.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID

import psycopg

from contracts.read_model import PROGRESS_CHANNEL, column_names, encode_progress, user_positions
from projector.rows import (
    TASK_COLUMNS,
    TASK_EVENT_COLUMNS,
    USER_COLUMNS,
    Rows,
    TaskEventRow,
    TaskRow,
    UserRow,
)
from projector.statements import (
    LIVE,
    REBUILD,
    REBUILD_SUFFIX,
    TableNames,
    statements,
)

__all__ = ["LIVE", "REBUILD", "REBUILD_SUFFIX", "TableNames"]  # the table sets, re-exported

# Advisory lock: live batches take it shared, the rebuild's swap takes it exclusively, so the swap
# sees no batch in flight and no batch runs while the tables are being swapped.
PROJECTION_LOCK_KEY = 0x52EAD51DE  # "read side", constant
# Only one rebuild at a time (session-level advisory lock).
REBUILD_LOCK_KEY = 0x52EB01D

Cursor = psycopg.Cursor[Any]

_POSITION_COLUMNS = column_names(user_positions)


def load_rows(
    cur: Cursor,
    tables: TableNames,
    user_ids: Iterable[UUID],
    task_ids: Iterable[UUID],
    *,
    for_update: bool,
    into: Rows | None = None,
) -> Rows:
    """Rows with these ids (sorted, so concurrent writers lock in the same order). Both selects
    go out before either is read: in pipeline mode one round trip, together with whatever the
    caller sent before on the same connection and has not read yet."""
    rows = into if into is not None else Rows()
    composed = statements(tables)
    with cur.connection.cursor() as tasks:
        if wanted_users := sorted(user_ids):
            cur.execute(composed.select_users[for_update], (wanted_users,))
        if wanted_tasks := sorted(task_ids):
            tasks.execute(composed.select_tasks[for_update], (wanted_tasks,))
        if wanted_users:
            rows.users.update((r[0], UserRow(*r)) for r in cur)
        if wanted_tasks:
            rows.tasks.update((r[0], TaskRow(*r)) for r in tasks)
    return rows


def _as_arrays(rows: Sequence[tuple[Any, ...]], width: int) -> list[list[Any]]:
    return [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def save_rows(cur: Cursor, tables: TableNames, rows: Rows) -> None:
    """Write the changed rows and the per-user positions (never moving anything backwards)."""
    composed = statements(tables)
    if rows.changed_users:
        cur.execute(composed.upsert_users, _changed_users(rows))
    if rows.changed_tasks:
        cur.execute(composed.upsert_tasks, _changed_tasks(rows))
    if rows.task_events:
        insert_task_events(cur, tables, rows.task_events)
    if rows.positions:
        save_positions(cur, tables, rows.positions)


def save_batch(
    cur: Cursor,
    tables: TableNames,
    rows: Rows,
    progress: Mapping[tuple[str, int], tuple[int, int]],
) -> None:
    """save_rows, the partitions' progress and notify_progress in one statement (the live
    projector's turn is a serial loop: every statement less is less wait for each event arriving
    meanwhile)."""
    cur.execute(
        statements(tables).save_batch,
        [
            *_changed_users(rows),
            *_changed_tasks(rows),
            *_history_arrays(rows.task_events),
            *_as_arrays(sorted(rows.positions.items()), len(_POSITION_COLUMNS)),
            *_progress_arrays(progress),
            PROGRESS_CHANNEL,
            encode_progress(rows.positions),
        ],
    )


def _changed_users(rows: Rows) -> list[list[Any]]:
    changed = [rows.users[i].as_tuple() for i in sorted(rows.changed_users)]
    return _as_arrays(changed, len(USER_COLUMNS))


def _changed_tasks(rows: Rows) -> list[list[Any]]:
    changed = [rows.tasks[i].as_tuple() for i in sorted(rows.changed_tasks)]
    return _as_arrays(changed, len(TASK_COLUMNS))


def _history_arrays(events: Sequence[TaskEventRow]) -> list[list[Any]]:
    ordered = sorted(
        (*e.as_tuple()[:-1], json.dumps(e.changes, ensure_ascii=False)) for e in events
    )
    return _as_arrays(ordered, len(TASK_EVENT_COLUMNS))


def insert_task_events(cur: Cursor, tables: TableNames, events: Sequence[TaskEventRow]) -> None:
    """History rows; one already there (same position: a replayed event) is left as it is."""
    cur.execute(statements(tables).insert_history, _history_arrays(events))


def save_positions(cur: Cursor, tables: TableNames, positions: Mapping[UUID, int]) -> None:
    ordered = sorted(positions.items())
    cur.execute(statements(tables).upsert_positions, _as_arrays(ordered, len(_POSITION_COLUMNS)))


def copy_rows(
    cur: Cursor,
    tables: TableNames,
    users: Sequence[UserRow],
    tasks: Sequence[TaskRow],
    task_events: Sequence[TaskEventRow] = (),
) -> None:
    """Bulk-insert rows known to be absent (the rebuild's fast path). Binary COPY: psycopg
    formats binary rows in C, about 5x less client CPU per row than text (`changes` goes as the
    dict itself: the binary jsonb dumper serialises it)."""
    composed = statements(tables)
    plan: tuple[tuple[tuple[bytes, tuple[str, ...]], Sequence[Any]], ...] = (
        (composed.copy_users, users),
        (composed.copy_tasks, tasks),
        (composed.copy_history, task_events),
    )
    for (statement, types), rows in plan:
        if not rows:
            continue
        with cur.copy(statement) as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row(row.as_tuple())


def _progress_arrays(progress: Mapping[tuple[str, int], tuple[int, int]]) -> list[list[Any]]:
    """Per (topic, partition): (last offset applied, highest store position applied)."""
    ordered = [(t, p, o, pos) for (t, p), (o, pos) in sorted(progress.items())]
    return _as_arrays(ordered, 4)


def notify_progress(cur: Cursor, positions: Mapping[UUID, int] | None) -> None:
    """Wake waiting queries once the transaction commits (see contracts.read_model)."""
    cur.execute("SELECT pg_notify(%s, %s)", (PROGRESS_CHANNEL, encode_progress(positions)))
