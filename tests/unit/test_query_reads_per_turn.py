"""_OnePerTurn: the calls of one turn of the event loop go to one read; its error reaches each of
them; a caller that went away does not disturb the others."""

from __future__ import annotations

import asyncio

import pytest

from query_api.repository import _OnePerTurn


class Reads:
    def __init__(self, fail: Exception | None = None) -> None:
        self.batches: list[list[int]] = []
        self.fail = fail

    async def read_all(self, asked: list[int]) -> list[str]:
        self.batches.append(asked)
        await asyncio.sleep(0.01)
        if self.fail is not None:
            raise self.fail
        return [f"answer {a}" for a in asked]


def test_calls_of_one_turn_share_one_read_and_later_calls_get_their_own() -> None:
    async def scenario() -> tuple[list[str], str, Reads]:
        reads = Reads()
        read = _OnePerTurn(reads.read_all)
        together = await asyncio.gather(*(read(i) for i in range(5)))
        later = await read(9)
        return together, later, reads

    together, later, reads = asyncio.run(scenario())
    assert together == [f"answer {i}" for i in range(5)] and later == "answer 9"
    assert reads.batches == [[0, 1, 2, 3, 4], [9]]


def test_a_failed_read_is_every_callers_error() -> None:
    async def scenario() -> list[BaseException | str]:
        read = _OnePerTurn(Reads(fail=ConnectionError("database gone")).read_all)
        return list(await asyncio.gather(read(1), read(2), return_exceptions=True))

    answers = asyncio.run(scenario())
    assert all(isinstance(a, ConnectionError) for a in answers)


def test_a_caller_cancelled_while_waiting_leaves_the_others_their_answers() -> None:
    async def scenario() -> tuple[str, str]:
        read = _OnePerTurn(Reads().read_all)
        gone = asyncio.ensure_future(read(1))
        stays = asyncio.ensure_future(read(2))
        await asyncio.sleep(0)
        gone.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gone
        return await stays, await read(3)

    assert asyncio.run(scenario()) == ("answer 2", "answer 3")
