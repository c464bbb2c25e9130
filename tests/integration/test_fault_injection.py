"""The fault-injection test (tests/support/chaos.py; `make chaos` runs it bigger): 2,000 commands
over HTTP from 8 users while the relay, projector, mailer and command API are each SIGKILLed and
restarted 3 times, a private Kafka broker is stopped for 15 s and digests are mailed. Every
acknowledged command ends in the store, on Kafka (in per-user order) and in the read tables,
exactly as the test's model says; no digest is emailed twice; no answer is a 5xx."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.settings import DatabaseSettings
from tests.support.chaos import KILLED, ChaosRun
from tests.support.chaos_config import ChaosConfig
from tests.support.read_side import migrate

pytestmark = pytest.mark.integration


@pytest.mark.timeout(900)  # about 105 s at the CI size; CHAOS_COMMANDS may make it bigger
def test_kills_a_broker_outage_and_digests_lose_nothing_and_apply_nothing_twice(
    db_settings: DatabaseSettings, tmp_path: Path
) -> None:
    migrate(db_settings)
    config = ChaosConfig.from_env()
    report = ChaosRun(config, db_settings, tmp_path).run()
    print("\n" + report.text())

    assert report.problems == []
    figures = report.figures
    assert figures["commands"] == config.commands >= 2000
    assert figures["acknowledged"] >= 0.95 * config.commands
    assert figures["lost"] == figures["duplicates"] == figures["order violations"] == 0
    assert figures["5xx answers"] == 0
    assert figures["kills"] == {name: config.kills for name in KILLED}
    assert [s >= config.outage_seconds for s in figures["outage seconds"]] == [True]
    assert len(figures["digest runs"]) == config.digest_dates + 1
