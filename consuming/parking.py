"""Sequenced dead letters in PostgreSQL (table `dead_letters`, contracts.read_model), as Axon's
SequencedDeadLetterQueue: once a message of an aggregate is dead-lettered, every later message of
that aggregate is parked behind it, in order, while other aggregates keep flowing.

The table is the truth (durable, shared by every process of a consumer group); the events.dlq topic
is the operators' feed. Statements take the caller's cursor, so the projector parks in the same
transaction as its batch and progress. A message is held back by its aggregate's parked rows
unless it sits *before* them on the same partition (an already-applied message, redelivered).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from contracts.dead_letters import DeadLetter, LetterKind, headers_from_json, headers_to_json

Cursor = psycopg.Cursor[Any]
Where = tuple[str, int, int]  # topic, partition, offset

# A constant: the statements below interpolate only this, never a value.
_COLUMNS = (
    'consumer, service, topic, partition, "offset", aggregate_id, event_type, kind, key, value,'
    " headers, reason, failed_at"
)


@dataclass
class Blockers:
    """Per aggregate, where its parked messages are; answers "must this message wait?"."""

    parked: dict[str, list[Where]]

    def head(self, aggregate_id: str | None, where: Where) -> Where | None:
        """The parked message `where` must wait behind, or None if it may be handled."""
        if aggregate_id is None:
            return None
        topic, partition, offset = where
        for other in sorted(self.parked.get(aggregate_id, ())):
            if other[:2] != (topic, partition) or other[2] <= offset:
                return other
        return None

    def add(self, aggregate_id: str | None, where: Where) -> None:
        if aggregate_id is not None:
            self.parked.setdefault(aggregate_id, []).append(where)


def blockers(cur: Cursor, consumer: str, aggregate_ids: Iterable[str]) -> Blockers:
    """The parked rows of these aggregates, locked FOR SHARE until the caller's commit, so a
    concurrent replay cannot unpark them under us (see consuming.dlq_cli)."""
    ids = sorted(set(aggregate_ids))
    found: dict[str, list[Where]] = {}
    if ids and _any_parked(cur, consumer):
        # A join, not `= ANY(array)`: with a few thousand parked rows the planner scans the
        # table and compares every row with every id (measured 14 ms vs 3 ms for 500 ids).
        cur.execute(
            'SELECT d.aggregate_id, d.topic, d.partition, d."offset" FROM dead_letters d'
            " JOIN unnest(%s::text[]) AS batch(id) ON d.aggregate_id = batch.id"
            " WHERE d.consumer = %s FOR SHARE OF d",
            (ids, consumer),
        )
        for aggregate, topic, partition, offset in cur.fetchall():
            found.setdefault(aggregate, []).append((topic, partition, offset))
    return Blockers(found)


# Whether the consumer has anything parked at all (its one parameter: the consumer).
ANY_PARKED = "SELECT EXISTS (SELECT 1 FROM dead_letters WHERE consumer = %s)"


def _any_parked(cur: Cursor, consumer: str) -> bool:
    """The usual answer is no: then one tiny index probe instead of matching a whole batch's ids
    (rows are only ever added for aggregates of the caller's own partitions, so nothing to lock)."""
    cur.execute(ANY_PARKED, (consumer,))
    row = cur.fetchone()
    return bool(row and row[0])


def park(cur: Cursor, letters: Sequence[DeadLetter]) -> list[DeadLetter]:
    """Insert (idempotent: a redelivered message keeps its first row); returns the letters as
    stored (kind, reason, failed_at of the first time)."""
    stored: list[DeadLetter] = []
    for letter in letters:
        cur.execute(
            f"INSERT INTO dead_letters ({_COLUMNS}) VALUES"  # noqa: S608
            " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            ' ON CONFLICT (consumer, topic, partition, "offset")'
            " DO UPDATE SET consumer = excluded.consumer RETURNING kind, reason, failed_at",
            (
                letter.consumer,
                letter.service,
                letter.topic,
                letter.partition,
                letter.offset,
                letter.aggregate_id,
                letter.event_type,
                letter.kind.value,
                letter.key,
                letter.value,
                Jsonb(headers_to_json(letter.headers)),
                letter.reason,
                letter.failed_at,
            ),
        )
        row = cur.fetchone()
        assert row is not None
        kind, reason, failed_at = row
        stored.append(replace(letter, kind=LetterKind(kind), reason=reason, failed_at=failed_at))
    return stored


@dataclass(frozen=True)
class Parked:
    """A row of `dead_letters`, as operators see it and replay works on it."""

    letter: DeadLetter
    last_replay_error: str | None

    @property
    def sequence(self) -> str:
        """Replay unit: the aggregate, or the message alone when its aggregate is unknown."""
        letter = self.letter
        return letter.aggregate_id or f"{letter.topic}/{letter.partition}/{letter.offset}"


def _parked(row: tuple[Any, ...]) -> Parked:
    consumer, service, topic, partition, offset, aggregate, event_type, kind = row[:8]
    key, value, headers, reason, failed_at, last_error = row[8:]
    letter = DeadLetter(
        consumer=consumer,
        service=service,
        topic=topic,
        partition=partition,
        offset=offset,
        key=bytes(key) if key is not None else None,
        value=bytes(value) if value is not None else None,
        reason=reason,
        kind=LetterKind(kind),
        aggregate_id=aggregate,
        event_type=event_type,
        headers=headers_from_json(headers),
        failed_at=failed_at,
    )
    return Parked(letter, last_error)


def list_parked(cur: Cursor, consumer: str, aggregate_id: str | None = None) -> list[Parked]:
    """Parked rows in replay order: by aggregate (oldest first), then topic/partition/offset."""
    cur.execute(
        f"SELECT {_COLUMNS}, last_replay_error FROM dead_letters WHERE consumer = %s"  # noqa: S608
        " AND (%s::text IS NULL OR aggregate_id = %s)"
        ' ORDER BY failed_at, aggregate_id, topic, partition, "offset"',
        (consumer, aggregate_id, aggregate_id),
    )
    rows = [_parked(r) for r in cur.fetchall()]
    first: dict[str, int] = {}
    for index, row in enumerate(rows):
        first.setdefault(row.sequence, index)
    return sorted(rows, key=lambda r: (first[r.sequence], r.letter.where))


def next_in_sequence(cur: Cursor, parked: Parked) -> Parked | None:
    """The first parked row of `parked`'s sequence, locked FOR UPDATE (None: nothing left)."""
    letter = parked.letter
    if letter.aggregate_id is None:
        condition, args = 'topic = %s AND partition = %s AND "offset" = %s', list(letter.where)
    else:
        condition, args = "aggregate_id = %s", [letter.aggregate_id]
    cur.execute(
        f"SELECT {_COLUMNS}, last_replay_error FROM dead_letters WHERE consumer = %s"  # noqa: S608
        f' AND {condition} ORDER BY topic, partition, "offset" LIMIT 1 FOR UPDATE',
        (letter.consumer, *args),
    )
    row = cur.fetchone()
    return _parked(row) if row else None


def unpark(cur: Cursor, letter: DeadLetter) -> None:
    cur.execute(
        "DELETE FROM dead_letters WHERE consumer = %s AND topic = %s AND partition = %s"
        ' AND "offset" = %s',
        (letter.consumer, *letter.where),
    )


def note_replay_failure(cur: Cursor, letter: DeadLetter, reason: str) -> None:
    cur.execute(
        "UPDATE dead_letters SET last_replay_error = %s WHERE consumer = %s AND topic = %s"
        ' AND partition = %s AND "offset" = %s',
        (reason, letter.consumer, *letter.where),
    )


def set_value(cur: Cursor, consumer: str, where: Where, value: bytes) -> bool:
    """Operator's fix: replace a parked message's value (the original stays on events.dlq)."""
    cur.execute(
        "UPDATE dead_letters SET value = %s WHERE consumer = %s AND topic = %s"
        ' AND partition = %s AND "offset" = %s',
        (value, consumer, *where),
    )
    return cur.rowcount == 1


def discard(cur: Cursor, consumer: str, where: Where) -> bool:
    """Operator's decision to drop one parked message for good (it stays on events.dlq)."""
    cur.execute(
        "DELETE FROM dead_letters WHERE consumer = %s AND topic = %s AND partition = %s"
        ' AND "offset" = %s',
        (consumer, *where),
    )
    return cur.rowcount == 1


def as_dict(parked: Parked) -> dict[str, Any]:
    letter = parked.letter
    failed_at: datetime = letter.failed_at
    return {
        "topic": letter.topic,
        "partition": letter.partition,
        "offset": letter.offset,
        "aggregate_id": letter.aggregate_id,
        "event_type": letter.event_type,
        "kind": letter.kind.value,
        "reason": letter.reason,
        "failed_at": failed_at.isoformat(),
        "last_replay_error": parked.last_replay_error,
    }
