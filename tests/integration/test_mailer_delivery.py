"""The whole digest flow for real: read tables → scheduler batch → store → relay → Kafka → mailer
→ a real SMTP server (aiosmtpd). Exactly one email per user and date, whatever is repeated."""

from __future__ import annotations

import json
from datetime import date

import pytest
from confluent_kafka import Producer

from contracts.events import DailyDigestRequested
from mailer.compose import message_id_for
from runtime.kafka import producer_config
from tests.support.digest import (
    DigestSystem,
    ReadUser,
    Task,
    mailer_settings,
    processed_event_ids,
    running_mailer,
)
from tests.support.infra import consume_all
from tests.support.smtp import SmtpServer

pytestmark = pytest.mark.integration
pytest_plugins = ["tests.support.mail_fixtures"]
DAY = date(2026, 11, 23)


def ada() -> ReadUser:
    return ReadUser(
        "ada@example.com",
        [
            Task("write <b>the</b> report & send it"),
            Task("water the plants", done=True),
            Task("file taxes"),
            Task("deleted", deleted=True),
        ],
    )


def bob() -> ReadUser:
    return ReadUser("bob@example.com", [Task("book flights"), Task("pack", done=True)])


def test_two_users_with_tasks_get_exactly_one_email_each_with_their_stats_and_undone_titles(
    system: DigestSystem, smtp: SmtpServer
) -> None:
    system.add_users([ada(), bob()])
    system.run_batch(DAY)
    events = {e.email: e for e in system.digest_events(2)}

    with running_mailer(system.db, system.kafka, mailer_settings(smtp)):
        smtp.wait_for(2)
        received = smtp.settle()

    assert sorted(r.rcpt_tos for r in received) == [("ada@example.com",), ("bob@example.com",)]
    to_ada = smtp.to("ada@example.com")[0]
    assert to_ada.message["Subject"] == "Your TODO digest for Mon 23 Nov 2026: 2 to do"
    assert to_ada.message["From"] == "TODO <no-reply@todo.localhost>"
    assert to_ada.message_id == message_id_for(events["ada@example.com"].event_id, "todo.localhost")
    text, html = to_ada.part("plain"), to_ada.part("html")
    assert "Tasks:     3" in text and "Done:      1" in text
    assert "- write <b>the</b> report & send it\n" in text and "- file taxes\n" in text
    assert "water the plants" not in text and "deleted" not in text
    assert "<li>write &lt;b&gt;the&lt;/b&gt; report &amp; send it</li>" in html.replace(
        ' style="margin:0 0 4px;"', ""
    )
    assert '<td style="padding:4px 0;font-weight:bold;" id="stat-undone">2</td>' in html
    bob_text = smtp.to("bob@example.com")[0].part("plain")
    assert "Tasks:     2" in bob_text and "- book flights\n" in bob_text
    assert processed_event_ids(system.db) == {e.event_id for e in events.values()}


def test_running_the_batch_again_for_the_same_date_sends_no_new_email(
    system: DigestSystem, smtp: SmtpServer
) -> None:
    system.add_users([ada(), bob()])
    system.run_batch(DAY)
    with running_mailer(system.db, system.kafka, mailer_settings(smtp)):
        smtp.wait_for(2)
        again = system.run_batch(DAY)
        received = smtp.settle(quiet=2.0)

    assert (again.recorded, again.already_recorded) == (0, 2)
    assert len(received) == 2
    assert len(system.digest_events(2)) == 2, "no second digest event was published either"


def test_a_duplicated_digest_message_on_kafka_sends_no_new_email(
    system: DigestSystem, smtp: SmtpServer
) -> None:
    system.add_users([ada(), bob()])
    system.run_batch(DAY)
    original = [
        m
        for m in consume_all(system.kafka, until=lambda ms: len(ms) >= 2)
        if json.loads(m.value())["type"] == "email.daily_digest.requested"
    ]
    with running_mailer(system.db, system.kafka, mailer_settings(smtp)) as mailer:
        smtp.wait_for(2)
        producer = Producer(producer_config(system.kafka))
        for m in original:  # the same message again, as a relay re-send would do
            producer.produce(m.topic(), key=m.key(), value=m.value(), headers=m.headers())
        assert producer.flush(10) == 0
        received = smtp.settle(quiet=2.0)
        duplicates = mailer.counters.duplicates

    assert len(received) == 2
    assert duplicates == 2


@pytest.mark.parametrize("mode", ["451", "disconnect"])
def test_an_smtp_server_failing_transiently_then_recovering_delivers_the_email_once(
    system: DigestSystem, smtp: SmtpServer, mode: str
) -> None:
    smtp.fail_transiently(3, mode="451" if mode == "451" else "disconnect")
    system.add_users([ada()])
    system.run_batch(DAY)

    with running_mailer(system.db, system.kafka, mailer_settings(smtp)):
        smtp.wait_for(1)
        received = smtp.settle(quiet=1.5)

    assert smtp.transient_failures_served == 3
    assert [r.rcpt_tos for r in received] == [("ada@example.com",)]


def test_a_permanently_refused_recipient_is_parked_and_dead_lettered_and_others_still_get_theirs(
    system: DigestSystem, smtp: SmtpServer
) -> None:
    smtp.reject_recipient("bob@example.com")
    carol = ReadUser("carol@example.com", [Task("carol's task")])
    system.add_users([ada(), bob(), carol])
    system.run_batch(DAY)
    bob_event = next(e for e in system.digest_events(3) if e.email == "bob@example.com")

    with running_mailer(system.db, system.kafka, mailer_settings(smtp)):
        smtp.wait_for(2)
        dead = consume_all(system.kafka, topic=system.kafka.KAFKA_DLQ_TOPIC, until=bool)
        received = smtp.settle(quiet=1.5)

    assert sorted(r.rcpt_tos[0] for r in received) == ["ada@example.com", "carol@example.com"]
    assert len(dead) == 1
    headers = {k: v.decode() for k, v in dead[0].headers()}
    assert "SMTP 550" in headers["dlq.reason"] and "mailbox unavailable" in headers["dlq.reason"]
    assert headers["dlq.service"] == "mailer" and headers["dlq.topic"] == system.kafka.KAFKA_TOPIC
    assert headers["dlq.kind"] == "poison"
    assert headers["dlq.aggregate_id"] == str(bob_event.digest_id)
    dead_event = DailyDigestRequested.model_validate_json(dead[0].value())
    assert dead_event.event_id == bob_event.event_id
    assert bob_event.event_id not in processed_event_ids(system.db), "parked for a replay"
