"""Each user's digest right after their own midnight: the scheduler's quarter-hour tick against
real PostgreSQL (read tables in, DailyDigest records in the store, the run ledger per zone)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from event_store.application import TodoStore
from event_store.domain.model import DailyDigest, digest_id_for
from runtime.settings import DatabaseSettings, HealthSettings
from scheduler.bootstrap import bootstrap
from tests.support.digest import (
    ReadUser,
    SeededReadSide,
    Task,
    migrated,
    run_batch,
    scheduler_settings,
)
from tests.support.system import store_for

pytestmark = pytest.mark.integration

DEC_2, DEC_3 = date(2026, 12, 2), date(2026, 12, 3)
LONDON = ReadUser("utc@example.com", [Task("a")])
KOLKATA = ReadUser("kolkata@example.com", [Task("b")], timezone="Asia/Kolkata")
KATHMANDU = ReadUser("kathmandu@example.com", [Task("c")], timezone="Asia/Kathmandu")
LOS_ANGELES = ReadUser("la@example.com", [Task("d")], timezone="America/Los_Angeles")
OFF = ReadUser("off@example.com", [Task("e")], timezone="Asia/Kathmandu", digest_enabled=False)
EVERYONE = [LONDON, KOLKATA, KATHMANDU, LOS_ANGELES, OFF]


@pytest.fixture
def db(db_settings: DatabaseSettings) -> DatabaseSettings:
    return migrated(db_settings, EVERYONE)


def recorded_dates(store: TodoStore, user: ReadUser) -> list[date]:
    return [d for d in (DEC_2, DEC_3) if store.recorder.select_events(digest_id_for(user.id, d))]


def tick(db: DatabaseSettings, store: TodoStore, at: datetime) -> None:
    """One quarter-hour tick at `at`, as the running scheduler's job does it."""
    fresh = SeededReadSide(store)
    settings = scheduler_settings()
    with bootstrap(
        settings, db, HealthSettings(), store=store, read_side=fresh, clock=lambda: at
    ) as process:
        process.service.run_due()


def test_each_tick_records_the_digests_of_the_zones_whose_local_midnight_passed(
    db: DatabaseSettings,
) -> None:
    with store_for(db) as store:
        # 18:00 UTC on Dec 2: nobody is on Dec 3 yet; every zone's Dec 2 is due (first start).
        tick(db, store, datetime(2026, 12, 2, 18, 0, tzinfo=UTC))
        assert {u.email: recorded_dates(store, u) for u in EVERYONE} == {
            u.email: ([DEC_2] if u is not OFF else []) for u in EVERYONE
        }
        # 18:15 UTC is 00:00 in Kathmandu (+05:45): only Kathmandu moves to Dec 3.
        tick(db, store, datetime(2026, 12, 2, 18, 15, tzinfo=UTC))
        assert recorded_dates(store, KATHMANDU) == [DEC_2, DEC_3]
        assert recorded_dates(store, KOLKATA) == [DEC_2]
        # 18:30 UTC is 00:00 in Kolkata (+05:30).
        tick(db, store, datetime(2026, 12, 2, 18, 30, tzinfo=UTC))
        assert recorded_dates(store, KOLKATA) == [DEC_2, DEC_3]
        assert recorded_dates(store, LONDON) == [DEC_2]
        # 07:45 UTC on Dec 3 is 23:45 in Los Angeles (-08:00); 08:00 is its midnight.
        tick(db, store, datetime(2026, 12, 3, 7, 45, tzinfo=UTC))
        assert recorded_dates(store, LONDON) == [DEC_2, DEC_3]
        assert recorded_dates(store, LOS_ANGELES) == [DEC_2]
        tick(db, store, datetime(2026, 12, 3, 8, 0, tzinfo=UTC))
        assert recorded_dates(store, LOS_ANGELES) == [DEC_2, DEC_3]

        assert recorded_dates(store, OFF) == [], "the digest is off: none"
        digest: object = store.repository.get(digest_id_for(KATHMANDU.id, DEC_3))
        assert isinstance(digest, DailyDigest)
        assert (digest.digest_date, digest.timezone) == (DEC_3, "Asia/Kathmandu")


def test_a_tick_firing_twice_records_each_digest_once(db: DatabaseSettings) -> None:
    at = datetime(2026, 12, 2, 18, 15, tzinfo=UTC)
    with store_for(db) as store:
        tick(db, store, at)
        head = store.head_position()
        tick(db, store, at)
        assert store.head_position() == head


def test_the_operator_run_for_a_date_records_every_users_digest_of_that_local_date(
    db: DatabaseSettings,
) -> None:
    with store_for(db) as store:
        summary = run_batch(db, store, DEC_3)
        assert summary is not None and summary.recorded == 4  # OFF is not even read
        for user in (LONDON, KOLKATA, KATHMANDU, LOS_ANGELES):
            assert recorded_dates(store, user) == [DEC_3]
        # At 12:00 UTC every zone is on Dec 3: the zones' own batches find every digest recorded.
        head = store.head_position()
        tick(db, store, datetime(2026, 12, 3, 12, 0, tzinfo=UTC))
        assert store.head_position() == head
