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

Used by the command API only (see command_api.main); the workers keep eventsourcing's defaults.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, cast

from eventsourcing.persistence import InterfaceError, OperationalError
from eventsourcing.postgres import PostgresApplicationRecorder
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

    # `__wrapped__`: the method without eventsourcing's retry (its decorator uses functools.wraps).
    insert_events = _retry_once_on_a_dead_connection(
        PostgresApplicationRecorder.insert_events.__wrapped__
    )
    select_events = _retry_once_on_a_dead_connection(
        PostgresApplicationRecorder.select_events.__wrapped__
    )


TOPIC = f"{__name__}:{PromptRecorder.__name__}"
