"""The scheduler's composition root: the adapters passed in are the ones the service uses, the
cron carries the configured jobs, and serving answers /ready while the cron runs."""

from __future__ import annotations

import json
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

from runtime.settings import DatabaseSettings, HealthSettings
from scheduler.batch import DigestCandidate
from scheduler.bootstrap import CATCH_UP_JOB_ID, DAILY_JOB_ID, bootstrap
from scheduler.settings import SchedulerSettings

AT = datetime(2026, 11, 22, 23, 0, 5, tzinfo=UTC)  # already Nov 23 in Paris


class UnusedStore:
    """The store, for tests that never run a batch: any call to it is a failure."""

    def head_position(self) -> int:
        raise AssertionError("no batch runs here")

    def request_daily_digests(
        self, digest_date: date, requests: Sequence[DigestCandidate]
    ) -> Sequence[Any | None]:
        raise AssertionError("no batch runs here")


class FreshReadSide:
    def applied_position(self) -> int:
        return 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ready_status(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=5) as r:
            assert json.loads(r.read()) == {"status": "ready"}
            return int(r.status)
    except urllib.error.HTTPError as e:
        return e.code
    except urllib.error.URLError:
        return None  # nothing listens


def test_the_service_runs_on_the_clock_and_settings_passed_in_and_the_cron_has_its_jobs() -> None:
    settings = SchedulerSettings(SCHEDULER_TIMEZONE="Europe/Paris", SCHEDULER_CATCH_UP=True)
    with bootstrap(
        settings, DatabaseSettings(), HealthSettings(), store=UnusedStore(),
        read_side=FreshReadSide(), clock=lambda: AT,
    ) as process:  # fmt: skip
        jobs = {job.id: job for job in process.cron.get_jobs()}

        assert process.service.today() == date(2026, 11, 23)
        assert set(jobs) == {DAILY_JOB_ID, CATCH_UP_JOB_ID}
        assert {job.func for job in jobs.values()} == {process.service.run_due}
        assert not process.ready()  # built, not started


def test_serving_answers_ready_while_the_cron_runs_and_stops_everything_when_asked() -> None:
    port = free_port()
    health = HealthSettings(HEALTH_HOST="127.0.0.1", SCHEDULER_HEALTH_PORT=port)
    # No catch-up run at start: it would read the read tables, which a unit test has not.
    settings = SchedulerSettings(SCHEDULER_CATCH_UP=False)
    stopping = threading.Event()
    with bootstrap(
        settings, DatabaseSettings(), health, store=UnusedStore(), read_side=FreshReadSide()
    ) as process:
        serving = threading.Thread(target=process.serve, args=(stopping,), daemon=True)
        serving.start()
        try:
            for _ in range(100):
                if ready_status(port) == 200:
                    break
                stopping.wait(0.05)
            assert ready_status(port) == 200
        finally:
            stopping.set()
            serving.join(timeout=10)

        assert not serving.is_alive()
        assert not process.ready()
        assert ready_status(port) is None  # the health server stopped with the process
