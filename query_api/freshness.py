"""Read-your-writes: wait until the projector has applied a user's position, without polling.

One LISTEN connection per process (channel common.read_model.PROGRESS_CHANNEL). The projector
NOTIFYs after each committed batch with the positions it reached per user; waiting requests are
futures keyed by user, resolved by the notifications. A request registers its future *before* it
reads the current position, so a notification can never slip between the two.

Safety nets, none of them a busy loop: after (re)connecting the listener re-reads the positions of
every waiter (notifications sent while it was away are lost); while requests are waiting it re-reads
their positions at most every `recheck_interval` seconds (one query for all of them), in case the
listening connection died silently; and a request whose deadline passes looks one last time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from uuid import UUID

import psycopg
from psycopg import sql

from common.read_model import PROGRESS_CHANNEL, decode_progress

log = logging.getLogger(__name__)

ReadPositions = Callable[[Sequence[UUID]], Awaitable[dict[UUID, int]]]


class PositionWaiter:
    def __init__(
        self,
        conninfo: str,
        read_positions: ReadPositions,
        *,
        recheck_interval: float = 0.5,
        max_backoff: float = 5.0,
    ) -> None:
        self._conninfo = conninfo
        self._read_positions = read_positions
        self._recheck_interval = recheck_interval
        self._max_backoff = max_backoff
        self._waiters: dict[UUID, list[tuple[int, asyncio.Future[None]]]] = {}
        self._task: asyncio.Task[None] | None = None
        self.listening = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen_forever(), name="position-listener")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def wait_for(self, user_id: UUID, position: int, max_wait: float) -> bool:
        """True once the user's projection has applied `position`; False after `max_wait` s."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (position, future)
        self._waiters.setdefault(user_id, []).append(entry)
        try:
            if await self._reached(user_id, position):
                return True
            try:
                await asyncio.wait_for(future, max_wait)
                return True
            except TimeoutError:
                return await self._reached(user_id, position)
        finally:
            entries = self._waiters.get(user_id)
            if entries is not None:
                with contextlib.suppress(ValueError):
                    entries.remove(entry)
                if not entries:
                    del self._waiters[user_id]

    @property
    def waiting(self) -> int:
        return sum(len(v) for v in self._waiters.values())

    async def _reached(self, user_id: UUID, position: int) -> bool:
        current = await self._read_positions([user_id])
        return current.get(user_id, 0) >= position

    def advance(self, positions: dict[UUID, int]) -> None:
        """Resolve the waiters these positions satisfy."""
        for user_id, reached in positions.items():
            for wanted, future in self._waiters.get(user_id, ()):
                if wanted <= reached and not future.done():
                    future.set_result(None)

    async def recheck(self) -> None:
        users = list(self._waiters)
        if users:
            self.advance(await self._read_positions(users))

    async def _listen_forever(self) -> None:
        backoff = 0.1
        while True:
            try:
                await self._listen()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if self.listening.is_set():
                    backoff = 0.1  # it had worked: reconnect promptly
                self.listening.clear()
                log.warning("position listener lost, reconnecting", extra={"error": str(e)})
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, self._max_backoff)

    async def _listen(self) -> None:
        async with await psycopg.AsyncConnection.connect(
            self._conninfo, autocommit=True, connect_timeout=5
        ) as conn:
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(PROGRESS_CHANNEL)))
            self.listening.set()
            await self.recheck()  # whatever happened while we were not listening
            while True:
                async for notify in conn.notifies(timeout=self._recheck_interval):
                    positions = _decode(notify.payload)
                    if positions is None:
                        await self.recheck()
                    else:
                        self.advance(positions)
                if self._waiters:
                    await self.recheck()


def _decode(payload: str) -> dict[UUID, int] | None:
    try:
        return decode_progress(payload)
    except ValueError:
        log.warning("unreadable progress notification", extra={"payload": payload[:200]})
        return None
