"""Reading the read tables: one simple indexed query per endpoint, answered as JSON by PostgreSQL.

PostgreSQL's `json_build_object` renders each row (the C code on the database side is much faster
than building dicts and serialising them in Python), the route only joins the rows. Statements are
fixed strings (one per filter combination) so psycopg prepares them once per connection.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Protocol
from uuid import UUID

import psycopg
from psycopg_pool import AsyncConnectionPool

from contracts.read_model import column_list, json_fields, task_events, tasks, user_positions, users
from contracts.task_schema import TaskPublic
from query_api.cursor import TaskPageCursor
from query_api.schemas import MePublic, TaskEventPublic

# (item JSON, created_at, id) per task, newest first.
TaskPageRow = tuple[str, datetime, UUID]
# (item JSON, position) per event of the user's activity, newest first.
ActivityRow = tuple[str, int]

# The columns the JSON items show: the fields of the API's schemas, each a column of the same name
# in the declared table (checked when the statements are built, at import).
_TASK_ITEM = tuple(TaskPublic.model_fields)
_USER_ITEM = tuple(name for name in MePublic.model_fields if name != "stats")
_EVENT_ITEM = tuple(TaskEventPublic.model_fields)


class ReadModel(Protocol):
    async def list_tasks(
        self, user_id: UUID, done: bool | None, after: TaskPageCursor | None, limit: int
    ) -> Sequence[TaskPageRow]: ...

    async def get_task(self, user_id: UUID, task_id: UUID) -> str | None: ...

    async def get_me(self, user_id: UUID) -> str | None: ...

    async def task_history(self, user_id: UUID, task_id: UUID) -> str | None:
        """The task's events as a JSON array, oldest first; None if it is not this user's."""

    async def activity(
        self, user_id: UUID, before_position: int | None, limit: int
    ) -> Sequence[ActivityRow]: ...

    async def positions(self, user_ids: Sequence[UUID]) -> dict[UUID, int]: ...

    async def changes_since(
        self, user_id: UUID, after: int, limit: int
    ) -> tuple[int, list[dict[str, Any]]]: ...


_TASK_JSON = f"json_build_object({json_fields(tasks, *_TASK_ITEM)})::text"


def _list_statement(with_done: bool, with_cursor: bool) -> str:
    where = ["user_id = %(user_id)s", "NOT deleted"]
    if with_done:
        where.append("done = %(done)s")
    if with_cursor:
        where.append("(created_at, id) < (%(created_at)s, %(id)s)")
    # Constant fragments only (values are bound parameters).
    return (
        f"SELECT {_TASK_JSON}, created_at, id FROM tasks WHERE {' AND '.join(where)}"  # noqa: S608
        " ORDER BY created_at DESC, id DESC LIMIT %(limit)s"
    )


_LIST = {(d, c): _list_statement(d, c) for d in (False, True) for c in (False, True)}
# Tasks by (id, owner), one row per pair asked, in the order asked (NULL: not theirs, or deleted).
_GET_MANY = (  # constant fragments only (values are bound parameters)
    f"SELECT (SELECT {_TASK_JSON} FROM tasks WHERE id = r.id AND user_id = r.user_id"  # noqa: S608
    " AND NOT deleted) FROM unnest(%s::uuid[], %s::uuid[]) WITH ORDINALITY AS r(id, user_id, i)"
    " ORDER BY r.i"
)
_ME = (  # constant fragments only (values are bound parameters)
    f"SELECT json_build_object({json_fields(users, *_USER_ITEM, alias='u')},"  # noqa: S608
    " 'stats', json_build_object('total', s.total, 'done', s.done, 'undone', s.total - s.done))"
    "::text FROM users u, LATERAL (SELECT count(*) AS total, count(*) FILTER (WHERE done) AS done"
    " FROM tasks WHERE user_id = u.id AND NOT deleted) s WHERE u.id = %s"
)
_EVENT_FIELDS = json_fields(task_events, *_EVENT_ITEM, alias="e")
_HISTORY = (
    f"SELECT json_agg(json_build_object({_EVENT_FIELDS}) ORDER BY e.position)::text"  # noqa: S608
    " FROM task_events e WHERE e.task_id = %s AND e.user_id = %s"
)


def _activity_statement(with_cursor: bool) -> str:
    before = " AND e.position < %(before)s" if with_cursor else ""
    return (
        f"SELECT json_build_object({_EVENT_FIELDS}, 'task_title', t.title)::text, e.position"  # noqa: S608
        " FROM task_events e JOIN tasks t ON t.id = e.task_id"
        f" WHERE e.user_id = %(user_id)s{before} ORDER BY e.position DESC LIMIT %(limit)s"
    )


_ACTIVITY = {c: _activity_statement(c) for c in (False, True)}
_POSITIONS = (
    f"SELECT {column_list(user_positions, 'user_id', 'position')} FROM user_positions"  # noqa: S608
    " WHERE user_id = ANY(%s)"
)
# For each (user, position) asked: the user's position and their tasks changed after that
# position, in one statement (one snapshot: no change can commit between the two), one row per
# request in the order asked. Deleted tasks are included: a stream reports deletions.
_CHANGES = (  # constant fragments only (values are bound parameters)
    "SELECT coalesce((SELECT position FROM user_positions WHERE user_id = r.user_id), 0),"  # noqa: S608
    f" coalesce((SELECT json_agg(json_build_object({json_fields(tasks, 'position', 'deleted')},"
    f" 'task', {_TASK_JSON.removesuffix('::text')}) ORDER BY position) FROM ("
    "  SELECT * FROM tasks WHERE user_id = r.user_id AND position > r.after"
    "  ORDER BY position LIMIT r.lim) changed), '[]')::text"
    " FROM unnest(%s::uuid[], %s::int8[], %s::int8[]) WITH ORDINALITY AS r(user_id, after, lim, i)"
    " ORDER BY r.i"
)


async def _configure(conn: psycopg.AsyncConnection[Any]) -> None:
    # JSON timestamps in UTC, whatever the server's default time zone.
    await conn.set_autocommit(True)
    await conn.execute("SET TIME ZONE 'UTC'")


def make_pool(conninfo: str, max_size: int) -> AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
    return AsyncConnectionPool(
        conninfo,
        min_size=min(2, max_size),
        max_size=max_size,
        open=False,
        configure=_configure,
        timeout=5.0,
        # Free a lost connection's slot after 2 s of failed reconnects (default: 5 minutes of
        # growing backoff), so that once PostgreSQL is back the next query reconnects at once.
        reconnect_timeout=2.0,
        kwargs={"connect_timeout": 5},
    )


Changes = tuple[int, list[dict[str, Any]]]  # (the user's position, [{position, deleted, task}])


class _OnePerTurn[A, R]:
    """Calls made in one turn of the event loop, answered by one statement for all of them.

    One projector commit wakes, in the same turn, every read-your-writes read and every open
    stream of every user it moved (query_api.freshness resolves their futures together); each
    then reads. One query each was a pool checkout, a round trip and a statement per reader; here
    the first call of a turn schedules one read for all of that turn's calls, at its end.
    `read_all(asked)` answers each of `asked`, in order; its error is every caller's error.
    """

    def __init__(self, read_all: Callable[[list[A]], Awaitable[Sequence[R]]]) -> None:
        self._read_all = read_all
        self._pending: list[tuple[A, asyncio.Future[R]]] = []
        self._reads: set[asyncio.Task[None]] = set()  # running reads (the loop keeps weak refs)

    async def __call__(self, asked: A) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._read_pending)
        self._pending.append((asked, future))
        return await future

    def _read_pending(self) -> None:
        pending, self._pending = self._pending, []
        task = asyncio.create_task(self._read(pending))
        self._reads.add(task)
        task.add_done_callback(self._reads.discard)

    async def _read(self, pending: list[tuple[A, asyncio.Future[R]]]) -> None:
        try:
            answers = await self._read_all([asked for asked, _ in pending])
        except Exception as e:  # each caller gets the error it would have had alone
            for _, future in pending:
                if not future.done():
                    future.set_exception(e)
            return
        except BaseException:  # cancelled (the process stops): so are the callers
            for _, future in pending:
                future.cancel()
            raise
        for (_, future), answer in zip(pending, answers, strict=True):
            if not future.done():  # its caller may have gone meanwhile (a closed stream)
                future.set_result(answer)


class PostgresReadModel:
    def __init__(self, pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]]) -> None:
        self._pool = pool
        self._changes = _OnePerTurn(self._changes_of_all)
        self._tasks = _OnePerTurn(self._tasks_of_all)

    async def list_tasks(
        self, user_id: UUID, done: bool | None, after: TaskPageCursor | None, limit: int
    ) -> Sequence[TaskPageRow]:
        params: dict[str, Any] = {"user_id": user_id, "limit": limit}
        if done is not None:
            params["done"] = done
        if after is not None:
            params["created_at"] = after.created_at
            params["id"] = after.id
        async with self._pool.connection() as conn:
            cur = await conn.execute(_LIST[done is not None, after is not None], params)
            return await cur.fetchall()

    async def get_task(self, user_id: UUID, task_id: UUID) -> str | None:
        """The task's JSON; the calls of one turn share a statement (_OnePerTurn)."""
        return await self._tasks((task_id, user_id))

    async def get_me(self, user_id: UUID) -> str | None:
        return await self._one(_ME, (user_id,))

    async def task_history(self, user_id: UUID, task_id: UUID) -> str | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(_HISTORY, (task_id, user_id))
            row = await cur.fetchone()
        # json_agg over no rows is NULL: no such task for this user.
        return None if row is None or row[0] is None else str(row[0])

    async def activity(
        self, user_id: UUID, before_position: int | None, limit: int
    ) -> Sequence[ActivityRow]:
        params = {"user_id": user_id, "before": before_position, "limit": limit}
        async with self._pool.connection() as conn:
            cur = await conn.execute(_ACTIVITY[before_position is not None], params)
            return await cur.fetchall()

    async def positions(self, user_ids: Sequence[UUID]) -> dict[UUID, int]:
        async with self._pool.connection() as conn:
            cur = await conn.execute(_POSITIONS, (list(user_ids),))
            return {row[0]: int(row[1]) for row in await cur.fetchall()}

    async def changes_since(self, user_id: UUID, after: int, limit: int) -> Changes:
        """(the user's position, [{position, deleted, task}] of tasks changed after `after`);
        the calls of one turn share a statement (_OnePerTurn)."""
        return await self._changes((user_id, after, limit))

    async def _changes_of_all(self, asked: list[tuple[UUID, int, int]]) -> list[Changes]:
        users, afters, limits = (list(column) for column in zip(*asked, strict=True))
        async with self._pool.connection() as conn:
            cur = await conn.execute(_CHANGES, (users, afters, limits))
            rows = await cur.fetchall()
        return [(int(position), json.loads(changes)) for position, changes in rows]

    async def _tasks_of_all(self, asked: list[tuple[UUID, UUID]]) -> list[str | None]:
        tasks, users = (list(column) for column in zip(*asked, strict=True))
        async with self._pool.connection() as conn:
            cur = await conn.execute(_GET_MANY, (tasks, users))
            return [row[0] for row in await cur.fetchall()]

    async def _one(self, query: str, params: tuple[Any, ...]) -> str | None:
        async with self._pool.connection() as conn:
            cur = await conn.execute(query, params)
            row = await cur.fetchone()
        return None if row is None else str(row[0])
