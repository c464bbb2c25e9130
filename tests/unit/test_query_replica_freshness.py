"""Read-your-writes against a replica, without a database: the primary's notifications only say
when to look; a waiter is resolved by what the replica shows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from uuid import UUID, uuid4

from query_api.freshness import ReplicaPositionWaiter
from tests.support.positions import Positions


@asynccontextmanager
async def confirming(waiter: ReplicaPositionWaiter) -> AsyncIterator[ReplicaPositionWaiter]:
    """The waiter's confirming task, without its LISTEN connection (notifications are fed by hand
    through `announce`, as the listener does)."""
    task = asyncio.create_task(waiter.confirm_forever())
    try:
        yield waiter
    finally:
        task.cancel()


def committed_on_primary(
    waiter: ReplicaPositionWaiter, primary: Positions, user: UUID, position: int
) -> None:
    """What the projector does on the primary: `user` reaches `position`, and it is announced."""
    primary.current[user] = position
    waiter.announce({user: position})


def test_a_notification_alone_does_not_answer_until_the_replica_has_replayed_the_position() -> None:
    primary, replica, user = Positions(), Positions(), uuid4()
    waiter = ReplicaPositionWaiter("unused", replica, primary)

    async def scenario() -> tuple[bool, float, int]:
        async with confirming(waiter):
            loop = asyncio.get_running_loop()
            started = loop.time()
            wait = asyncio.create_task(waiter.wait_for(user, 5, max_wait=5))
            await asyncio.sleep(0.01)
            committed_on_primary(waiter, primary, user, 5)  # the projector committed...
            await asyncio.sleep(0.2)
            assert not wait.done(), "...but the replica has not replayed it: keep waiting"
            replica.current[user] = 5  # replayed: confirmed without another notification
            return await wait, loop.time() - started, replica.reads

    reached, elapsed, reads = asyncio.run(scenario())
    assert reached is True and elapsed < 1
    # First look, then backing off from 2 ms to 50 ms: a handful of looks in 0.2 s, not a spin.
    assert 3 <= reads <= 15
    assert waiter.waiting == 0


def test_a_write_on_the_primary_before_the_request_came_is_confirmed_without_notification() -> None:
    primary, replica, user = Positions(), Positions(), uuid4()
    primary.current[user] = 7  # committed (and notified) before the request registered
    waiter = ReplicaPositionWaiter("unused", replica, primary)

    async def scenario() -> bool:
        async with confirming(waiter):
            wait = asyncio.create_task(waiter.wait_for(user, 7, max_wait=5))
            await asyncio.sleep(0.05)
            assert not wait.done()
            replica.current[user] = 7
            return await wait

    assert asyncio.run(scenario()) is True
    assert primary.reads == 1  # asked once, when the first look on the replica missed


def test_a_paused_replica_makes_the_request_wait_its_bound_then_say_stale_not_earlier() -> None:
    primary, replica, user = Positions(), Positions(), uuid4()
    waiter = ReplicaPositionWaiter("unused", replica, primary)
    replica.current[user] = 3  # stuck: replay paused

    async def scenario() -> tuple[bool, float]:
        async with confirming(waiter):
            loop = asyncio.get_running_loop()
            started = loop.time()
            wait = asyncio.create_task(waiter.wait_for(user, 4, max_wait=0.3))
            await asyncio.sleep(0.01)
            committed_on_primary(waiter, primary, user, 4)
            return await wait, loop.time() - started

    reached, elapsed = asyncio.run(scenario())
    assert reached is False
    assert 0.3 <= elapsed < 1
    assert replica.reads <= 15, "backed off to one look per 50 ms"


def test_announcements_nobody_waits_for_read_nothing() -> None:
    primary, replica, user = Positions(), Positions(), uuid4()
    waiter = ReplicaPositionWaiter("unused", replica, primary)

    async def scenario() -> None:
        async with confirming(waiter):
            waiter.announce({user: 9, uuid4(): 3})
            await asyncio.sleep(0.05)

    asyncio.run(scenario())
    assert replica.reads == 0 and primary.reads == 0


def test_an_announcement_below_what_a_request_wants_does_not_start_looking() -> None:
    primary, replica, user = Positions(), Positions(), uuid4()
    waiter = ReplicaPositionWaiter("unused", replica, primary)

    async def scenario() -> int:
        async with confirming(waiter):
            wait = asyncio.create_task(waiter.wait_for(user, 10, max_wait=0.2))
            await asyncio.sleep(0.01)
            looks_before = replica.reads
            waiter.announce({user: 9})  # not far enough for anyone
            await asyncio.sleep(0.1)
            assert replica.reads == looks_before
            return int(await wait)

    assert asyncio.run(scenario()) == 0


def test_a_recheck_asks_the_primary_then_confirms_on_the_replica() -> None:
    primary, replica, a, b = Positions(), Positions(), uuid4(), uuid4()
    waiter = ReplicaPositionWaiter("unused", replica, primary)

    async def scenario() -> list[bool]:
        async with confirming(waiter):
            waits = [
                asyncio.create_task(waiter.wait_for(a, 3, max_wait=0.5)),
                asyncio.create_task(waiter.wait_for(b, 3, max_wait=0.5)),
            ]
            await asyncio.sleep(0.01)
            primary.current[a] = replica.current[a] = 3  # b: on neither
            await waiter.recheck()  # as after a "*" notification or a reconnect
            await asyncio.sleep(0.05)
            assert waits[0].done() and not waits[1].done(), "a confirmed at once, b still waits"
            return list(await asyncio.gather(*waits))

    assert asyncio.run(scenario()) == [True, False]
