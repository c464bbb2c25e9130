"""The relay writes its checkpoint at most every RELAY_CHECKPOINT_INTERVAL_SECONDS instead of after
every batch (a round trip before the next read and a PostgreSQL write per batch): a newer position
is held back until due, then written, and written at once when the relay stops."""

from __future__ import annotations

import psycopg
import pytest

from event_store.relay import Checkpoint
from runtime.settings import DatabaseSettings


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


def stored(db: DatabaseSettings) -> int:
    """What a relay starting now would resume from (read on a connection of its own)."""
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        return Checkpoint(conn, "relay-under-test").load()


def test_a_position_published_within_the_interval_is_written_once_due(
    db_settings: DatabaseSettings,
) -> None:
    clock = Clock()
    with psycopg.connect(db_settings.conninfo, autocommit=True) as conn:
        checkpoint = Checkpoint(conn, "relay-under-test", interval=0.1, clock=clock)

        checkpoint.advance(5)
        assert stored(db_settings) == 5  # the first one at once

        clock.now += 0.05
        checkpoint.advance(7)
        checkpoint.advance(9)
        checkpoint.flush_if_due()
        assert stored(db_settings) == 5
        assert checkpoint.due_in() == pytest.approx(0.05)

        clock.now += 0.06
        checkpoint.flush_if_due()
        assert stored(db_settings) == 9
        assert checkpoint.due_in() is None  # nothing held back any more


def test_a_held_back_position_is_written_at_once_on_flush(db_settings: DatabaseSettings) -> None:
    clock = Clock()
    with psycopg.connect(db_settings.conninfo, autocommit=True) as conn:
        checkpoint = Checkpoint(conn, "relay-under-test", interval=10, clock=clock)
        checkpoint.advance(3)
        checkpoint.advance(4)

        checkpoint.flush()  # what the relay does when it stops

    assert stored(db_settings) == 4


def test_an_interval_of_zero_writes_every_position(db_settings: DatabaseSettings) -> None:
    with psycopg.connect(db_settings.conninfo, autocommit=True) as conn:
        checkpoint = Checkpoint(conn, "relay-under-test", interval=0, clock=Clock())
        for position in (3, 4, 5):
            checkpoint.advance(position)
            assert stored(db_settings) == position
