"""Read-your-writes waiting, without a database: futures resolved by progress notifications."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any
from uuid import uuid4

from contracts.read_model import decode_progress, encode_progress
from query_api.freshness import PositionWaiter
from tests.support.positions import Positions


def run[T](coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def timed[T](coro: Coroutine[Any, Any, T]) -> tuple[T, float]:
    """The coroutine's result, and how long it took by the event loop's clock."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    return await coro, loop.time() - started


def test_a_position_already_applied_answers_at_once_with_one_read() -> None:
    positions, user = Positions(), uuid4()
    positions.current[user] = 10
    waiter = PositionWaiter("unused", positions)
    assert run(waiter.wait_for(user, 10, max_wait=5)) is True
    assert positions.reads == 1


def test_a_waiting_request_wakes_when_a_notification_reaches_its_position() -> None:
    positions, user = Positions(), uuid4()
    waiter = PositionWaiter("unused", positions)

    async def scenario() -> bool:
        wait = asyncio.create_task(waiter.wait_for(user, 5, max_wait=5))
        await asyncio.sleep(0.01)
        waiter.advance({user: 4})  # not far enough
        waiter.advance({uuid4(): 99})  # someone else
        await asyncio.sleep(0.01)
        assert not wait.done()
        waiter.advance({user: 6})
        return await wait

    reached, elapsed = run(timed(scenario()))
    assert reached is True and elapsed < 1
    assert waiter.waiting == 0


def test_a_position_never_reached_gives_up_after_the_bound_and_says_so() -> None:
    positions, user = Positions(), uuid4()
    waiter = PositionWaiter("unused", positions)

    reached, elapsed = run(timed(waiter.wait_for(user, 5, max_wait=0.1)))
    assert reached is False
    assert 0.1 <= elapsed < 1
    assert positions.reads == 2  # the first check and one last look, no polling in between
    assert waiter.waiting == 0


def test_a_recheck_resolves_every_waiter_whose_position_the_database_shows() -> None:
    positions, a, b = Positions(), uuid4(), uuid4()
    waiter = PositionWaiter("unused", positions)

    async def scenario() -> list[bool]:
        waits = [
            asyncio.create_task(waiter.wait_for(a, 3, max_wait=0.3)),
            asyncio.create_task(waiter.wait_for(b, 3, max_wait=0.3)),
        ]
        await asyncio.sleep(0.01)
        positions.current[a] = 3
        await waiter.recheck()
        return list(await asyncio.gather(*waits))

    assert run(scenario()) == [True, False]


def test_progress_payloads_round_trip_and_large_batches_fall_back_to_everyone() -> None:
    moved = {uuid4(): 12, uuid4(): 7}
    assert decode_progress(encode_progress(moved)) == moved
    many = {uuid4(): i for i in range(1000)}
    assert encode_progress(many) == "*"
    assert decode_progress("*") is None


def test_a_read_for_a_position_a_notification_already_reported_needs_no_database_look() -> None:
    positions, user = Positions(), uuid4()
    waiter = PositionWaiter("unused", positions)

    async def scenario() -> bool:
        waiter.advance({user: 7})
        return await waiter.wait_for(user, 6, max_wait=1)

    assert run(scenario()) is True
    assert positions.reads == 0


def test_a_user_read_while_listening_waits_for_the_next_notification_without_looking_again() -> (
    None
):
    positions, user = Positions(), uuid4()
    positions.current[user] = 3
    waiter = PositionWaiter("unused", positions)

    async def scenario() -> list[bool]:
        waiter.listening.set()
        first = await waiter.wait_for(user, 3, max_wait=1)  # read once: exact from now on
        second = asyncio.create_task(waiter.wait_for(user, 4, max_wait=1))
        await asyncio.sleep(0.01)
        reads_while_waiting = positions.reads
        waiter.advance({user: 4})
        return [first, await second, reads_while_waiting == 1]

    assert run(scenario()) == [True, True, True]


def test_a_notification_that_does_not_say_whom_it_moved_makes_the_next_read_look_again() -> None:
    positions, user = Positions(), uuid4()
    positions.current[user] = 3
    waiter = PositionWaiter("unused", positions)

    async def scenario() -> bool:
        waiter.listening.set()
        await waiter.wait_for(user, 3, max_wait=1)
        positions.current[user] = 5  # committed; its notification said "*"
        await waiter._progressed(None)
        return await waiter.wait_for(user, 5, max_wait=1)

    assert run(scenario()) is True
    assert positions.reads == 2


def test_a_read_while_not_listening_always_asks_the_database() -> None:
    positions, user = Positions(), uuid4()
    positions.current[user] = 3
    waiter = PositionWaiter("unused", positions)

    async def scenario() -> bool:
        await waiter.wait_for(user, 3, max_wait=1)
        positions.current[user] = 4  # a notification the listener, being away, never saw
        return await waiter.wait_for(user, 4, max_wait=1)

    assert run(scenario()) is True
    assert positions.reads == 2
