"""The query API's reads that share one statement per turn of the event loop (what one projector
commit wakes at once) answer each caller exactly as a read of its own would."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID, uuid4

import pytest

from consuming.batch import Delivered
from contracts.events import PublicEvent
from projector.sink import PostgresProjection
from query_api.repository import PostgresReadModel, make_pool
from runtime.settings import DatabaseSettings
from tests.support.events import History

pytestmark = pytest.mark.integration


def projected(db: DatabaseSettings) -> dict[str, UUID]:
    """Ada with a live and a deleted task, Bob with one task."""
    h, ada, bob = History(), uuid4(), uuid4()
    ids = {"ada": ada, "bob": bob, "kept": uuid4(), "deleted": uuid4(), "bobs": uuid4()}
    events: list[PublicEvent] = [
        h.register(ada),
        h.register(bob, "bob@example.com"),
        h.create(ada, ids["kept"], "kept"),
        h.create(ada, ids["deleted"], "gone"),
        h.create(bob, ids["bobs"], "bob's"),
        h.delete(ada, ids["deleted"]),
        h.rename(ada, ids["kept"], "kept, renamed"),
    ]
    projection = PostgresProjection(db.conninfo, "projector")
    try:
        projection.apply([Delivered(e, "events", 0, e.position) for e in events])
    finally:
        projection.close()
    return ids


async def both_ways(db: DatabaseSettings, ids: dict[str, UUID]) -> tuple[list[Any], list[Any]]:
    """The same reads, all in one turn (gathered), then each alone (awaited one by one)."""
    ada, bob = ids["ada"], ids["bob"]
    pool = make_pool(db.conninfo, 2)
    await pool.open()
    try:
        reads = PostgresReadModel(pool)

        def calls() -> list[Any]:
            return [
                reads.get_task(ada, ids["kept"]),
                reads.get_task(ada, ids["deleted"]),
                reads.get_task(ada, ids["bobs"]),
                reads.get_task(bob, ids["bobs"]),
                reads.changes_since(ada, 0, 500),
                reads.changes_since(ada, 3, 500),
                reads.changes_since(ada, 0, 1),
                reads.changes_since(bob, 0, 500),
                reads.changes_since(uuid4(), 0, 500),
            ]

        together = await asyncio.gather(*calls())
        alone = [await call for call in calls()]
        return together, alone
    finally:
        await pool.close()


def test_reads_made_in_one_turn_answer_each_caller_as_its_own_read_would(
    read_db: DatabaseSettings,
) -> None:
    ids = projected(read_db)
    together, alone = asyncio.run(both_ways(read_db, ids))
    assert together == alone
    kept, deleted, not_adas, bobs, *changes = together
    assert '"kept, renamed"' in kept and deleted is None and not_adas is None
    assert str(ids["bobs"]) in bobs
    everything, after_3, first_only, bobs_changes, nobodys = changes
    assert [c["position"] for c in everything[1]] == [6, 7], "latest state per task, in order"
    assert everything[1][0]["deleted"] and not everything[1][1]["deleted"]
    assert [c["position"] for c in after_3[1]] == [6, 7]
    assert [c["position"] for c in first_only[1]] == [6], "each caller's own limit"
    assert everything[0] == 7 and bobs_changes[0] == 5 and nobodys == (0, [])
