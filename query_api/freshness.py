"""Read-your-writes: wait until the projector has applied a user's position, without polling.

One LISTEN connection per process (channel contracts.read_model.PROGRESS_CHANNEL). The projector
NOTIFYs after each committed batch with the positions it reached per user; waiting requests are
futures keyed by user, resolved by the notifications. A request registers its future *before* it
reads the current position, so a notification can never slip between the two.

Safety nets, none of them a busy loop: after (re)connecting the listener re-reads the positions of
every waiter (notifications sent while it was away are lost); while requests are waiting it re-reads
their positions at most every `recheck_interval` seconds (one query for all of them), in case the
listening connection died silently; and a request whose deadline passes looks one last time.

Reading from a streaming replica (ReplicaPositionWaiter): NOTIFY does not reach a standby, and the
projector's commit reaches it a moment after the primary's NOTIFY (or much later, when replay lags
or is paused). So the primary still says *when* to look (the same LISTEN, on the primary), and the
replica's own user_positions says *whether* the rows are there; see that class.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from uuid import UUID

import psycopg
from psycopg import sql

from contracts.read_model import PROGRESS_CHANNEL, decode_progress
from query_api.known_positions import KnownPositions

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
        self._known = KnownPositions()

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
            await self._missed(user_id)
            try:
                await asyncio.wait_for(future, max_wait)
                return True
            except TimeoutError:
                return await self._looks_once_more(user_id, position)
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
        """The first look: answered from what the notifications told this process when they tell
        enough (KnownPositions), else from the database."""
        known = self._known.verdict(user_id, position)
        if known is not None:
            return known
        session = self._known.session
        current = (await self._read_positions([user_id])).get(user_id, 0)
        if self.listening.is_set():
            self._known.learn_exact(user_id, current, session)
        return current >= position

    async def _looks_once_more(self, user_id: UUID, position: int) -> bool:
        current = await self._read_positions([user_id])
        return current.get(user_id, 0) >= position

    async def _missed(self, user_id: UUID) -> None:
        """The first look did not find the position: here, the next notification will."""

    async def _progressed(self, positions: dict[UUID, int] | None) -> None:
        """A notification from the projector: these users' positions (None: anyone's)."""
        if positions is None:
            self._known.forget_exact()
            await self.recheck()
        else:
            self.advance(positions)

    def advance(self, positions: dict[UUID, int]) -> None:
        """Resolve the waiters these positions satisfy."""
        self._known.raise_to(positions)
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
            self._known.forget_exact()  # notifications may have been missed while away
            self.listening.set()
            await self.recheck()  # whatever happened while we were not listening
            while True:
                async for notify in conn.notifies(timeout=self._recheck_interval):
                    await self._progressed(_decode(notify.payload))
                if self._waiters:
                    await self.recheck()


def _decode(payload: str) -> dict[UUID, int] | None:
    try:
        return decode_progress(payload)
    except ValueError:
        log.warning("unreadable progress notification", extra={"payload": payload[:200]})
        return None


class ReplicaPositionWaiter(PositionWaiter):
    """Read-your-writes when the reads go to a streaming replica.

    The LISTEN stays on the primary (`conninfo`): a notification *announces* that a user reached
    a position on the primary. An announced user someone waits for is then *confirmed* on the
    replica (`read_positions`, its own user_positions, replayed with the rows in the same
    transaction): one look at once, then again after 2, 4, 8... ms up to `max_look` (50 ms) while
    it is not there, and at once whenever a new announcement comes. One confirming task per process,
    one query per look for every announced user; nothing runs while nobody waits. A waiter is
    resolved only by what the replica shows, so a lagging or paused replica makes requests wait
    (up to their bound, then X-Stale), never answer stale.

    NOTIFY only announces what commits *after* the request registered; what the primary already
    had when the request's first look missed on the replica (it was committed but not replayed yet)
    is read from the primary (`primary_positions`) for that user, and announced. The periodic and
    reconnect re-checks read the primary too: announcing is the primary's part, confirming the
    replica's.
    """

    def __init__(
        self,
        conninfo: str,
        read_positions: ReadPositions,
        primary_positions: ReadPositions,
        *,
        first_look: float = 0.002,
        max_look: float = 0.05,
        **kwargs: float,
    ) -> None:
        super().__init__(conninfo, read_positions, **kwargs)
        self._primary_positions = primary_positions
        self._first_look = first_look
        self._max_look = max_look
        self._announced: dict[UUID, int] = {}  # on the primary, not yet seen on the replica
        self._announcement = asyncio.Event()
        self._confirmer: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._confirmer = asyncio.create_task(self.confirm_forever(), name="replica-confirmer")
        await super().start()

    async def stop(self) -> None:
        await super().stop()
        if self._confirmer is not None:
            self._confirmer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._confirmer
            self._confirmer = None

    def announce(self, positions: dict[UUID, int]) -> None:
        """The primary has these positions: confirm the ones a waiter would accept."""
        for user_id, reached in positions.items():
            wanted = [w for w, _ in self._waiters.get(user_id, ())]
            if wanted and min(wanted) <= reached and reached > self._announced.get(user_id, 0):
                self._announced[user_id] = reached
                self._announcement.set()

    async def _reached(self, user_id: UUID, position: int) -> bool:
        # The primary's notifications say nothing about what the replica shows: always look.
        return await self._looks_once_more(user_id, position)

    async def _progressed(self, positions: dict[UUID, int] | None) -> None:
        if positions is None:
            await self.recheck()
        else:
            self.announce(positions)

    async def recheck(self) -> None:
        users = list(self._waiters)
        if users:
            self.announce(await self._primary_positions(users))

    async def _missed(self, user_id: UUID) -> None:
        try:
            self.announce(await self._primary_positions([user_id]))
        except psycopg.Error as e:  # the replica may still answer: wait for it, then look again
            log.warning("reading a position on the primary failed", extra={"error": str(e)})

    async def confirm(self) -> None:
        """One look at the replica for every announced user; forget what it shows, or what
        nobody waits for any more."""
        users = list(self._announced)
        current = await self._read_positions(users)
        self.advance(current)
        for user_id in users:
            announced = self._announced.get(user_id)
            if announced is None:
                continue
            if current.get(user_id, 0) >= announced or user_id not in self._waiters:
                del self._announced[user_id]

    async def confirm_forever(self) -> None:
        while True:
            await self._announcement.wait()
            delay = self._first_look
            while self._announced:
                self._announcement.clear()
                try:
                    await self.confirm()
                except Exception as e:  # e.g. the replica restarting: never let this task die
                    log.warning("reading positions on the replica failed", extra={"error": str(e)})
                    delay = self._max_look
                if not self._announced:
                    break
                try:  # a new announcement looks at once; otherwise look again, backing off
                    await asyncio.wait_for(self._announcement.wait(), delay)
                    delay = self._first_look
                except TimeoutError:
                    delay = min(delay * 2, self._max_look)
            self._announcement.clear()
