"""The store's queries (event_store.store_queries) on eventsourcing's PostgreSQL recorder, each
statement built once. The events table's name and the latest-event statement are defined here once,
also for the two reads that run on connections of their own (event_store.relay_reader,
event_store.digest_preference): together the only SQL on the recorder's tables in this project."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg import sql
from psycopg.rows import tuple_row

from event_store.store_queries import EventRow, Shard


def events_table(recorder: PostgresApplicationRecorder) -> sql.Identifier:
    """The recorder's events table, qualified by its schema."""
    return sql.Identifier(recorder.datastore.schema, recorder.events_table_name)


def latest_event_statement(table: sql.Identifier) -> sql.Composed:
    """(originator_id, originator_version, topic, state) of an aggregate's latest event of a topic
    (parameters: the aggregate id, the topic); one indexed row."""
    return sql.SQL(
        "SELECT originator_id, originator_version, topic, state FROM {}"
        " WHERE originator_id = %s AND topic = %s"
        " ORDER BY originator_version DESC LIMIT 1"
    ).format(table)


class PostgresQueries:
    def __init__(self, recorder: PostgresApplicationRecorder) -> None:
        self._recorder = recorder
        self._datastore = recorder.datastore
        table = events_table(recorder)
        self._existing = sql.SQL(
            "SELECT DISTINCT originator_id FROM {} WHERE originator_id = ANY(%s)"
        ).format(table)
        self._latest = latest_event_statement(table)
        self._rows = sql.SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state FROM {}"
            " WHERE notification_id > %s AND notification_id <= %s AND topic = ANY(%s){}"
            " ORDER BY notification_id"
        )
        self._table = table

    def head_position(self) -> int:
        return self._recorder.max_notification_id() or 0

    def existing_ids(self, aggregate_ids: Sequence[UUID]) -> set[UUID]:
        with self._datastore.transaction(commit=False) as cursor:
            cursor.execute(self._existing, (list(aggregate_ids),))
            return {row["originator_id"] for row in cursor.fetchall()}

    def latest_event(self, aggregate_id: UUID, topic: str) -> StoredEvent | None:
        with self._datastore.transaction(commit=False) as cursor:
            cursor.execute(self._latest, (aggregate_id, topic))
            row = cursor.fetchone()
        if row is None:
            return None
        return StoredEvent(
            originator_id=row["originator_id"],
            originator_version=row["originator_version"],
            topic=row["topic"],
            state=bytes(row["state"]),
        )

    def event_rows(
        self, after: int, until: int, topics: Sequence[str], shard: Shard | None
    ) -> list[EventRow]:
        if until <= after:
            return []
        statement = self._rows.format(self._table, _shard_predicate(shard))
        with self._datastore.get_connection() as conn, conn.transaction():
            # A parallel plan (Gather Merge) for a window of the index only burns the CPU that
            # the callers, worker processes themselves, need.
            conn.execute("SET LOCAL max_parallel_workers_per_gather = 0")
            # Binary rows as plain tuples: the rebuild reads millions of them.
            with conn.cursor(row_factory=tuple_row, binary=True) as cur:
                cur.execute(statement, (after, until, list(topics)))
                return cur.fetchall()

    def check_reachable(self) -> None:
        with self._datastore.get_connection() as conn:
            conn.execute("select 1")

    def discard_broken_connections(self) -> None:
        self._datastore.pool.check()


def _shard_predicate(shard: Shard | None) -> sql.Composable:
    """The shard, evaluated by PostgreSQL (the last byte of the aggregate id, as Shard.holds)."""
    if shard is None or shard.count == 1:
        return sql.SQL("")
    return sql.SQL(" AND get_byte(uuid_send(originator_id), 15) %% {} = {}").format(
        sql.Literal(shard.count), sql.Literal(shard.index)
    )
