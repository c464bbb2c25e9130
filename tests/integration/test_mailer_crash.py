"""Crashes of the real `python -m mailer` process (SIGKILL), then a restart: still one email per
user, thanks to processed_events; and in the one remaining window (SMTP accepted, not yet
recorded) the re-sent copy is the very same message (same Message-ID, same bytes)."""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from datetime import date

import pytest
from confluent_kafka import Consumer, TopicPartition

from mailer.settings import MailerSettings
from runtime.settings import KafkaSettings
from tests.support.digest import (
    DigestSystem,
    ReadUser,
    Task,
    mailer_process,
    mailer_settings,
    processed_event_ids,
    wait_for_log,
)
from tests.support.infra import PARTITIONS
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.support.mail_fixtures"]
DAY = date(2026, 11, 23)
USERS = ["ada@example.com", "bob@example.com"]


@pytest.fixture
def system(system: DigestSystem) -> DigestSystem:
    """The mail tests' digest system, with each user's digest already recorded for DAY."""
    system.add_users([ReadUser(email, [Task(f"task of {email}")]) for email in USERS])
    system.run_batch(DAY)
    return system


def committed_offsets(kafka: KafkaSettings, settings: MailerSettings) -> list[int]:
    consumer = Consumer(
        {"bootstrap.servers": kafka.KAFKA_BOOTSTRAP_SERVERS, "group.id": settings.MAILER_GROUP_ID}
    )
    try:
        partitions = [TopicPartition(kafka.KAFKA_TOPIC, p) for p in range(PARTITIONS)]
        return [tp.offset for tp in consumer.committed(partitions, timeout=10)]
    finally:
        consumer.close()


def wait_until(condition: object, timeout: float = 30.0) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.1)


def restart_and_finish(system: DigestSystem, smtp: SmtpServer, settings: MailerSettings) -> None:
    """A normal mailer until every digest is processed; then a graceful stop (SIGTERM)."""
    event_ids = {e.event_id for e in system.digest_events(len(USERS))}
    process = mailer_process(system.db, system.kafka, settings)
    try:
        # Its signal handlers are installed before this line: a SIGTERM sent earlier (a slow
        # start on a loaded machine) would kill it the default way, not stop it gracefully.
        wait_for_log(process, "mailer started")
        wait_until(lambda: processed_event_ids(system.db) >= event_ids)
        smtp.settle(quiet=1.5)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, "graceful stop"
    finally:
        process.kill()


def paused_mailer(
    system: DigestSystem, settings: MailerSettings, pause: str
) -> subprocess.Popen[str]:
    """A real mailer process, once it has stopped at its fault-injection point `pause`."""
    process = mailer_process(system.db, system.kafka, settings, MAILER_FAULT_PAUSE=pause)
    wait_for_log(process, "fault injection: paused")
    return process


def kill(process: subprocess.Popen[str]) -> None:
    """SIGKILL: a crash, with no chance to commit, record or clean up."""
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)


def test_killing_the_mailer_between_consuming_and_committing_still_sends_one_email_each(
    system: DigestSystem, smtp: SmtpServer
) -> None:
    settings = mailer_settings(smtp, MAILER_INSTANCE_ID="mailer-1")
    crashing = paused_mailer(system, settings, "before_commit")
    sent_before_kill = len(smtp.received)
    kill(crashing)
    uncommitted = committed_offsets(system.kafka, settings)

    restart_and_finish(system, smtp, settings)

    assert sent_before_kill >= 1, "it was killed after sending, before committing"
    assert all(o < 0 for o in uncommitted), f"nothing was committed before the kill: {uncommitted}"
    assert sorted(r.rcpt_tos[0] for r in smtp.received) == USERS
    assert sum(o for o in committed_offsets(system.kafka, settings) if o > 0) >= len(USERS)


def test_a_crash_after_smtp_accepted_but_before_recording_resends_the_very_same_message(
    system: DigestSystem, smtp: SmtpServer
) -> None:
    settings = mailer_settings(smtp, MAILER_INSTANCE_ID="mailer-1")
    crashing = paused_mailer(system, settings, "after_send")
    kill(crashing)
    [in_the_window] = smtp.received

    restart_and_finish(system, smtp, settings)

    copies = Counter(r.message_id for r in smtp.received)
    assert copies == {
        in_the_window.message_id: 2,
        **{m: 1 for m in copies if m != in_the_window.message_id},
    }
    assert len(copies) == len(USERS)
    resent = [r for r in smtp.received if r.message_id == in_the_window.message_id]
    assert resent[0].raw == resent[1].raw, "byte-identical: receivers can deduplicate it"
