"""The digest batch waits for the read side: a task created just before midnight, still on its way
through relay → Kafka → projector when the batch starts, is in that night's digest."""

from __future__ import annotations

import threading
import time
from datetime import date

import pytest

from event_store.domain.model import DailyDigest, digest_id_for
from runtime.settings import DatabaseSettings, KafkaSettings, RelaySettings
from scheduler.batch import BatchSummary
from scheduler.read_side import PipelineProgress
from scheduler.service import DigestService
from tests.support.digest import scheduler_settings
from tests.support.read_side import migrate, running_projector
from tests.support.system import running_relay, store_for

pytestmark = pytest.mark.integration
DAY = date(2026, 11, 24)
GROUP = "projector-freshness"


def migrated_progress(db: DatabaseSettings, kafka: KafkaSettings) -> PipelineProgress:
    """The real schema on `db`, and how far the pipeline (relay, then this test's projector group)
    has come, as the batch asks before it reads."""
    migrate(db)
    return PipelineProgress(db, kafka, GROUP, RelaySettings().RELAY_NAME)


def test_a_task_created_just_before_the_batch_is_in_the_digest_once_the_read_side_applies_it(
    db_settings: DatabaseSettings, kafka_settings: KafkaSettings
) -> None:
    progress = migrated_progress(db_settings, kafka_settings)
    settings = scheduler_settings(SCHEDULER_READ_SIDE_WAIT_SECONDS=60)
    results: list[BatchSummary | None] = []
    with store_for(db_settings) as store, running_relay(store, db_settings, kafka_settings):
        user = store.register_user("late@example.com", "hash").aggregate
        store.create_task(user.id, "written at 23:59:59")
        service = DigestService(settings, db_settings, store, progress)
        batch = threading.Thread(
            target=lambda: results.append(service.run_date(DAY, skip_if_completed=False))
        )
        batch.start()
        time.sleep(2.0)  # the projector is down: the read tables do not have the task yet
        assert batch.is_alive(), "the batch must not read a read side that lags the store"

        with running_projector(db_settings, kafka_settings, group=GROUP):
            batch.join(timeout=60)
        assert not batch.is_alive()
        digest: object = store.repository.get(digest_id_for(user.id, DAY))

    [summary] = results
    assert summary is not None and summary.recorded == 1
    assert isinstance(digest, DailyDigest)
    assert (digest.total, digest.undone_titles) == (1, ["written at 23:59:59"])


def test_a_read_side_that_stays_behind_delays_the_batch_only_up_to_the_bound(
    db_settings: DatabaseSettings, kafka_settings: KafkaSettings
) -> None:
    progress = migrated_progress(db_settings, kafka_settings)
    settings = scheduler_settings(SCHEDULER_READ_SIDE_WAIT_SECONDS=1.5)
    with store_for(db_settings) as store:
        user = store.register_user("stuck@example.com", "hash").aggregate
        store.create_task(user.id, "never projected")
        started = time.monotonic()
        summary = DigestService(settings, db_settings, store, progress).run_date(
            DAY, skip_if_completed=False
        )
        waited = time.monotonic() - started

    assert summary is not None and summary.users == 0, "nothing projected: nobody to digest"
    assert 1.5 <= waited < 15
