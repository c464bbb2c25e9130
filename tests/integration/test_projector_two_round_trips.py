"""A live batch with nothing parked for its consumer is applied in two round trips: the parked-rows
probe goes out with the row loads instead of before them (projector/sink.py). When the probe does
find something parked, that attempt writes nothing and the batch takes the careful path, which
parks what waits behind a parked message, so the poison policy holds whichever path ran."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID, uuid4

import psycopg

from consuming.batch import Delivered
from contracts.dead_letters import LetterKind
from contracts.events import PublicEvent
from projector.sink import PostgresProjection
from runtime.settings import DatabaseSettings
from tests.support.events import History

CONSUMER = "projector-under-test"


class Deliveries:
    """Public events as Kafka would deliver them: one partition, consecutive offsets."""

    def __init__(self) -> None:
        self.offset = 0

    def __call__(self, events: Sequence[PublicEvent]) -> list[Delivered]:
        delivered = []
        for event in events:
            self.offset += 1
            delivered.append(Delivered(event, "events", 0, self.offset))
        return delivered


def title_of(db: DatabaseSettings, task: UUID) -> str | None:
    with psycopg.connect(db.conninfo) as conn:
        row = conn.execute("SELECT title FROM tasks WHERE id = %s", (task,)).fetchone()
    return None if row is None else str(row[0])


def parked_offsets(db: DatabaseSettings) -> list[int]:
    with psycopg.connect(db.conninfo) as conn:
        rows = conn.execute(
            'SELECT "offset" FROM dead_letters WHERE consumer = %s ORDER BY 1', (CONSUMER,)
        ).fetchall()
    return [r[0] for r in rows]


def test_a_batch_without_poison_still_waits_behind_its_aggregates_parked_message(
    read_db: DatabaseSettings,
) -> None:
    h, deliver = History(), Deliveries()
    user, task, other = uuid4(), uuid4(), uuid4()
    projection = PostgresProjection(read_db.conninfo, CONSUMER)
    try:
        projection.apply(deliver([*h.user_with_task(user, task), h.create(user, other, "b")]))
        [bad] = deliver([h.rename(user, task, "poisoned")])
        projection.apply([], [bad.letter(CONSUMER, "projector", "refused", LetterKind.POISON)])

        # No poison in this batch: the two-round-trip attempt runs, finds the parked row, and
        # the careful path parks the task's rename behind it while the other task's applies.
        result = projection.apply(
            deliver([h.rename(user, task, "behind it"), h.rename(user, other, "flows")])
        )
    finally:
        projection.close()

    assert [p.kind for p in result.parked] == [LetterKind.PARKED]
    assert result.handled == 1
    assert parked_offsets(read_db) == [bad.offset, bad.offset + 1]
    assert title_of(read_db, task) == "write tests"  # neither rename applied
    assert title_of(read_db, other) == "flows"


def test_with_nothing_parked_a_batch_is_applied_once_with_its_progress(
    read_db: DatabaseSettings,
) -> None:
    h, deliver = History(), Deliveries()
    user, task = uuid4(), uuid4()
    projection = PostgresProjection(read_db.conninfo, CONSUMER)
    try:
        first = projection.apply(deliver(h.user_with_task(user, task)))
        batch = deliver([h.rename(user, task, "renamed")])
        second = projection.apply(batch)
        again = projection.apply(batch)  # re-delivered: skipped by the version check
    finally:
        projection.close()

    assert (first.handled, second.handled, again.handled, again.duplicates) == (2, 1, 0, 1)
    assert title_of(read_db, task) == "renamed"
    with psycopg.connect(read_db.conninfo) as conn:
        progress = conn.execute(
            'SELECT "offset", position FROM projector_progress WHERE partition = 0'
        ).fetchone()
        position = conn.execute(
            "SELECT position FROM user_positions WHERE user_id = %s", (user,)
        ).fetchone()
    assert progress == (batch[0].offset, batch[0].event.position)
    assert position == (batch[0].event.position,)
    assert parked_offsets(read_db) == []
