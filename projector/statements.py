"""The projector's SQL statements for a set of read-table names (`LIVE`, or the rebuild's fresh
copies `REBUILD`), so the live projector and the rebuild share every statement. Columns and their
PostgreSQL types come from contracts.read_model's declaration. Each set of names has its
statements composed and rendered to bytes once (at import for LIVE and REBUILD), not per batch:
psycopg renders a `Composed` again at every execute (identifier quoting, encoding), which was a
sixth of the live projector's CPU per small batch. Executed by projector.db.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from dataclasses import dataclass

from psycopg import sql
from sqlalchemy import Table

from contracts.read_model import column_names, pg_types, task_events, tasks, user_positions, users
from projector.rows import TASK_COLUMNS, USER_COLUMNS

REBUILD_SUFFIX = "_rebuild"


@dataclass(frozen=True)
class TableNames:
    users: str
    tasks: str
    user_positions: str
    task_events: str


LIVE = TableNames(users.name, tasks.name, user_positions.name, task_events.name)
REBUILD = TableNames(*(name + REBUILD_SUFFIX for name in dataclasses.astuple(LIVE)))


def _columns(names: Sequence[str]) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(n) for n in names)


def _arrays(types: Sequence[str]) -> sql.Composable:
    """One `%s::type[]` parameter per column: the batch goes as one array per column."""
    return sql.SQL(", ").join(sql.SQL("%s::{}[]").format(sql.SQL(t)) for t in types)


def _select_by_id(table: str, columns: Sequence[str], lock: str) -> bytes:
    return _rendered(
        sql.SQL("SELECT {} FROM {} WHERE id = ANY(%s) ORDER BY id{}").format(
            _columns(columns), sql.Identifier(table), sql.SQL(lock)
        )
    )


def _rendered(statement: sql.Composed) -> bytes:
    """The statement as the bytes psycopg sends (names are ASCII identifiers: no connection's
    encoding is needed to quote them)."""
    return statement.as_bytes(None)


def _upsert(table: Table, name: str, key: str, guard: str) -> sql.Composed:
    columns = column_names(table)
    updates = sql.SQL(", ").join(
        sql.SQL("{0} = excluded.{0}").format(sql.Identifier(c)) for c in columns if c != key
    )
    return sql.SQL(
        "INSERT INTO {table} ({cols}) SELECT * FROM unnest({arrays})"
        " ON CONFLICT ({key}) DO UPDATE SET {updates} WHERE {table}.{guard} < excluded.{guard}"
    ).format(
        table=sql.Identifier(name),
        cols=_columns(columns),
        arrays=_arrays(pg_types(table)),
        key=sql.Identifier(key),
        updates=updates,
        guard=sql.Identifier(guard),
    )


def _insert_history(name: str) -> sql.Composed:
    # `changes` travels as text (no jsonb[] parameter needed) and is cast in the statement.
    text_types = (*pg_types(task_events)[:-1], "text")
    return sql.SQL(
        "INSERT INTO {table} ({cols}) SELECT p, u, t, ty, o, v, c::jsonb"
        " FROM unnest({arrays}) AS e(p, u, t, ty, o, v, c)"
        " ON CONFLICT (position) DO NOTHING"
    ).format(
        table=sql.Identifier(name),
        cols=_columns(column_names(task_events)),
        arrays=_arrays(text_types),
    )


SAVE_PROGRESS = (
    'INSERT INTO projector_progress (topic, partition, "offset", position, updated_at)'
    " SELECT topic, partition, o, position, now()"
    " FROM unnest(%s::text[], %s::int4[], %s::int8[], %s::int8[])"
    " AS batch(topic, partition, o, position)"
    " ON CONFLICT (topic, partition) DO UPDATE SET"
    ' "offset" = excluded."offset",'
    " position = greatest(projector_progress.position, excluded.position),"
    " updated_at = now()"
)


def _save_batch(writes: Sequence[sql.Composable]) -> sql.Composed:
    """Every write of a live batch and its NOTIFY as one statement (data-modifying CTEs, each on
    its own table, all run to completion): one parse, bind and execute in PostgreSQL and one in
    psycopg instead of five; an empty array writes nothing."""
    ctes = sql.SQL(", ").join(sql.SQL("w{} AS ({})").format(i, w) for i, w in enumerate(writes))
    return sql.SQL("WITH {} SELECT pg_notify(%s, %s)").format(ctes)


def _copy(name: str, table: Table) -> tuple[bytes, tuple[str, ...]]:
    statement = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(name), _columns(column_names(table))
    )
    return _rendered(statement), pg_types(table)


@dataclass(frozen=True)
class _Statements:
    """Every statement for one set of table names, rendered once (not per batch)."""

    select_users: dict[bool, bytes]  # by for_update
    select_tasks: dict[bool, bytes]
    upsert_users: bytes
    upsert_tasks: bytes
    upsert_positions: bytes
    insert_history: bytes
    save_batch: bytes  # the live projector's writes and NOTIFY (save_batch)
    copy_users: tuple[bytes, tuple[str, ...]]
    copy_tasks: tuple[bytes, tuple[str, ...]]
    copy_history: tuple[bytes, tuple[str, ...]]


@functools.cache
def statements(names: TableNames) -> _Statements:
    locks = {True: " FOR UPDATE", False: ""}
    # Each write composed once: alone (the rebuild, replay) and within the live batch's statement.
    upsert_users = _upsert(users, names.users, "id", "version")
    upsert_tasks = _upsert(tasks, names.tasks, "id", "version")
    insert_history = _insert_history(names.task_events)
    upsert_positions = _upsert(user_positions, names.user_positions, "user_id", "position")
    batch_writes = (upsert_users, upsert_tasks, insert_history, upsert_positions)
    return _Statements(
        select_users={u: _select_by_id(names.users, USER_COLUMNS, k) for u, k in locks.items()},
        select_tasks={u: _select_by_id(names.tasks, TASK_COLUMNS, k) for u, k in locks.items()},
        upsert_users=_rendered(upsert_users),
        upsert_tasks=_rendered(upsert_tasks),
        upsert_positions=_rendered(upsert_positions),
        insert_history=_rendered(insert_history),
        save_batch=_rendered(_save_batch((*batch_writes, sql.SQL(SAVE_PROGRESS)))),
        copy_users=_copy(names.users, users),
        copy_tasks=_copy(names.tasks, tasks),
        copy_history=_copy(names.task_events, task_events),
    )


for _names in (LIVE, REBUILD):
    statements(_names)  # compose at import: the first batch pays nothing
