"""The command API's recorder: eventsourcing's PostgreSQL recorder, tuned to answer promptly when
PostgreSQL is unreachable and to recover as soon as it is back.

- eventsourcing retries every read and write up to 10 times on OperationalError/InterfaceError,
  each attempt waiting up to the pool timeout for a connection: with PostgreSQL down, one command
  blocked for ~50 s. Here a call is retried once, and only when it failed on a connection (one
  that died when PostgreSQL restarted): when the pool could not even hand one out, the database is
  down and the API answers 503 at once. (The API also has the pool check its idle connections
  then: TodoStore.discard_broken_connections.)
- psycopg_pool keeps trying to replace a lost connection with a growing backoff (1, 2, 4, 8 s...)
  for 5 minutes before it frees the slot: after a 30 s outage the API stayed unavailable for
  another ~15-30 s. Giving up on a slot after RECONNECT_SECONDS lets the next request open a new
  connection right away.

- One round trip per transaction (issue 12): eventsourcing's insert_events syncs its pipeline three
  times (after BEGIN, after the INSERT, at COMMIT). Under load the group-commit writer then waits
  for the GIL after every round trip, behind the event loop. Here BEGIN, the table lock, NOTIFY,
  the INSERT ... RETURNING and COMMIT go out in one pipeline with a single Sync: the same
  statements, the same lock (commit order = notification id order), one wait.

Used by the command API only (see command_api.bootstrap); the workers keep eventsourcing's defaults.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Sequence
from typing import Any, cast

import psycopg
from eventsourcing.persistence import InterfaceError, OperationalError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg import sql
from psycopg.pq import TransactionStatus
from psycopg_pool import PoolTimeout

RECONNECT_SECONDS = 2.0


def _retry_once_on_a_dead_connection[F: Callable[..., Any]](method: F) -> F:
    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except (InterfaceError, OperationalError) as e:
            if isinstance(e.__cause__, PoolTimeout):
                raise  # no connection to be had: PostgreSQL is down, retrying only delays a 503
            return method(*args, **kwargs)

    return cast(F, call)


class PromptRecorder(PostgresApplicationRecorder):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.datastore.pool.reconnect_timeout = RECONNECT_SECONDS
        self._notify_statement = sql.SQL("NOTIFY {0}").format(sql.Identifier(self.channel_name))
        # The events as a binary array of the composite type: psycopg's text dump of the same
        # composites costs the writer about twice the CPU per event (the statement is otherwise
        # eventsourcing's own; its one placeholder is the array, and the names it quotes have no %).
        self._insert_binary = sql.SQL(self.insert_events_statement.as_string().replace("%s", "%b"))

    @_retry_once_on_a_dead_connection
    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Record the events in one transaction and one round trip; their notification ids."""
        if not stored_events:
            return []
        pg_events = [
            self.construct_pg_stored_event(e.originator_id, e.originator_version, e.topic, e.state)
            for e in stored_events
        ]
        with self.datastore.get_connection() as conn:
            statements, inserting = conn.cursor(), conn.cursor()
            try:
                with conn.pipeline():  # sent together; leaving the block is the one Sync
                    statements.execute("BEGIN")
                    for lock_statement in self.lock_table_statements:
                        statements.execute(lock_statement, prepare=True)
                    statements.execute(self._notify_statement, prepare=True)
                    inserting.execute(self._insert_binary, (pg_events,), prepare=True)
                    statements.execute("COMMIT")
            except BaseException:
                # The INSERT failed (a version conflict, say): PostgreSQL skipped the COMMIT and
                # the transaction is aborted; end it before the connection goes back to the pool.
                # (If even that fails, the pool discards the connection on its return.)
                if conn.info.transaction_status != TransactionStatus.IDLE and not conn.closed:
                    with contextlib.suppress(psycopg.Error):
                        conn.rollback()
                raise
            return [row["notification_id"] for row in inserting.fetchall()]

    select_events = _retry_once_on_a_dead_connection(
        PostgresApplicationRecorder.select_events.__wrapped__
    )


TOPIC = f"{__name__}:{PromptRecorder.__name__}"
