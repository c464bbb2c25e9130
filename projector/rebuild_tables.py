"""The rebuild's DDL: fresh `*_rebuild` tables, their indexes after the load, and the swap of the
new tables into the live names."""

from __future__ import annotations

import dataclasses
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
from psycopg import sql
from sqlalchemy import MetaData, Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateIndex, CreateTable
from sqlalchemy.sql.elements import conv

from contracts.read_model import NAMING_CONVENTION, REBUILT_TABLES, task_events, tasks, users
from projector.db import LIVE, REBUILD_SUFFIX

SUFFIX = REBUILD_SUFFIX  # the names projector.db.REBUILD writes to
_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]
# Sort memory of each index build: the largest index (a million history rows) sorts in memory.
_INDEX_MEMORY = "256MB"
# Tables whose primary key is built after the bulk load, like their other indexes (one sort, not a
# btree insert per row): the bulk phase only COPYs into them. (`user_positions` keeps its key: the
# workers' positions are merged into it by upserts.)
_KEYS_AFTER_LOAD = frozenset(t.name for t in (users, tasks, task_events))
_KEYS_LOCK = 0x7265_6B65_7973  # serialises the workers that add the keys early (see add_keys)


def check_schema(conn: psycopg.Connection[Any]) -> None:
    with conn.transaction():
        for table in REBUILT_TABLES:
            row = conn.execute("SELECT to_regclass(%s)", (table.name,)).fetchone()
            if row is None or row[0] is None:
                raise RuntimeError(
                    f"table {table.name!r} does not exist: run `alembic upgrade head` first"
                )


def create_tables(conn: psycopg.Connection[Any]) -> None:
    """Fresh copies, dropping the leftovers of an interrupted rebuild: no indexes, and no primary
    key either but `user_positions`' (the others' come with the indexes, after the load). (Logged:
    unlogged during the load and `SET LOGGED` after it cost PostgreSQL more CPU, as that rewrites
    each table and rebuilds its keys.)"""
    with conn.transaction():
        for table in REBUILT_TABLES:
            copy = _rebuild_copy(table)
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(copy.name)))
            conn.execute(str(CreateTable(copy).compile(dialect=_DIALECT)))
            if table.name in _KEYS_AFTER_LOAD:
                conn.execute(
                    sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                        sql.Identifier(copy.name), sql.Identifier(_key_name(table))
                    )
                )


def add_keys(conn: psycopg.Connection[Any]) -> None:
    """The primary keys now, for a bulk replay that must load and upsert rows it wrote already
    (its cache overflowed): those need the keys. Its own transaction; the first worker to come
    adds them, the others find them."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_KEYS_LOCK,))
        for table in _keys_after_load():
            if not _has_key(conn, table):
                _add_key(conn, table, sql.SQL("({})").format(_key_columns(table)))


def _keys_after_load() -> list[Table]:
    return [t for t in REBUILT_TABLES if t.name in _KEYS_AFTER_LOAD]


def _add_key(conn: psycopg.Connection[Any], table: Table, source: sql.Composable) -> None:
    """`source`: the key's columns, or the unique index built on them."""
    conn.execute(
        sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY {}").format(
            sql.Identifier(table.name + SUFFIX), sql.Identifier(_key_name(table)), source
        )
    )


def _has_key(conn: psycopg.Connection[Any], table: Table) -> bool:
    found = conn.execute(
        "SELECT 1 FROM pg_constraint WHERE conname = %s AND conrelid = to_regclass(%s)",
        (_key_name(table), table.name + SUFFIX),
    )
    return found.fetchone() is not None


def _key_name(table: Table) -> str:
    return f"pk_{table.name}{SUFFIX}"


def _key_columns(table: Table) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(c.name) for c in table.primary_key.columns)


def create_indexes(conninfo: str, connections: int) -> None:
    """Primary keys and secondary indexes once the rows are in (one sort each, not one insert per
    row), on up to `connections` connections at once (each index build is one process's sort),
    the largest first. A key is built as a unique index (which, unlike `ADD PRIMARY KEY`, does not
    lock the table against the other builds on it), then made the primary key (no scan: its
    columns are `NOT NULL`); then statistics for the planner. An interrupted build leaves only
    the `*_rebuild` tables, which the next rebuild drops."""
    builds: list[bytes] = []
    for table in sorted(REBUILT_TABLES, key=_size_rank):
        copy = _rebuild_copy(table)
        if table.name in _KEYS_AFTER_LOAD:  # (`IF NOT EXISTS`: add_keys may have added it already)
            builds.append(
                sql.SQL("CREATE UNIQUE INDEX IF NOT EXISTS {} ON {} ({})")
                .format(
                    sql.Identifier(_key_name(table)), sql.Identifier(copy.name), _key_columns(table)
                )
                .as_bytes(None)
            )
        builds += [str(CreateIndex(i).compile(dialect=_DIALECT)).encode() for i in copy.indexes]
    _run_on_connections(conninfo, connections, builds)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for table in _keys_after_load():
            if not _has_key(conn, table):
                unique_index = sql.Identifier(_key_name(table))
                _add_key(conn, table, sql.SQL("USING INDEX {}").format(unique_index))
    analyse = [
        sql.SQL("ANALYZE {}").format(sql.Identifier(t.name + SUFFIX)).as_bytes(None)
        for t in REBUILT_TABLES
    ]
    _run_on_connections(conninfo, connections, analyse)


def _run_on_connections(conninfo: str, connections: int, statements: list[bytes]) -> None:
    pending = iter(statements)
    lock = threading.Lock()

    def run() -> None:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f"SET maintenance_work_mem = '{_INDEX_MEMORY}'")
            if connections > 1:
                # One process per build: the connections are the parallelism (PostgreSQL's
                # parallel workers on top of them only contend for the same cores).
                conn.execute("SET max_parallel_maintenance_workers = 0")
            while True:
                with lock:
                    statement = next(pending, None)
                if statement is None:
                    return
                conn.execute(statement)

    with ThreadPoolExecutor(max_workers=max(1, connections)) as pool:
        for done in [pool.submit(run) for _ in range(max(1, connections))]:
            done.result()


def _size_rank(table: Table) -> int:
    """The history first: it has the most rows (one per task event)."""
    return {task_events.name: 0, tasks.name: 1}.get(table.name, 2)


def rename_into_place(conn: psycopg.Connection[Any]) -> None:
    """In the caller's transaction: drop the live tables and give the new ones their names."""
    assert {t.name for t in REBUILT_TABLES} == set(dataclasses.astuple(LIVE))
    conn.execute(
        sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(
            sql.SQL(", ").join(sql.Identifier(t.name) for t in REBUILT_TABLES)
        )
    )
    for table in REBUILT_TABLES:
        new = table.name + SUFFIX
        conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(table.name)))
        conn.execute(
            sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                sql.Identifier(new), sql.Identifier(table.name)
            )
        )
        conn.execute(
            sql.SQL("ALTER TABLE {} RENAME CONSTRAINT {} TO {}").format(
                sql.Identifier(table.name),
                sql.Identifier(f"pk_{new}"),
                sql.Identifier(f"pk_{table.name}"),
            )
        )
        for index in table.indexes:
            assert index.name is not None
            conn.execute(
                sql.SQL("ALTER INDEX {} RENAME TO {}").format(
                    sql.Identifier(f"{index.name}{SUFFIX}"), sql.Identifier(index.name)
                )
            )


def _rebuild_copy(table: Table) -> Table:
    copy = table.to_metadata(
        MetaData(naming_convention=NAMING_CONVENTION), name=table.name + SUFFIX
    )
    copy.primary_key.name = conv(f"pk_{copy.name}")
    for index in copy.indexes:
        index.name = conv(f"{index.name}{SUFFIX}")
    return copy
