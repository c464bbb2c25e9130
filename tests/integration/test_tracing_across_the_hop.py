"""One command followed by its trace id across the hop: HTTP request → event store → relay →
Kafka header → projector log, on real PostgreSQL and Kafka."""

from __future__ import annotations

import io
import json
import logging
from datetime import date
from uuid import UUID

import pytest

from runtime import tracing
from runtime.logging import JsonFormatter
from runtime.settings import DatabaseSettings, KafkaSettings
from tests.support.digest import ReadUser, Task, digest_system, mailer_process, mailer_settings
from tests.support.infra import consume_all
from tests.support.read_side import (
    log_lines,
    snapshot,
    start_projector_process,
    stop_process,
    wait_until,
)
from tests.support.smtp import running_smtp_server
from tests.support.system import auth, command_client, register_and_login, running_relay, store_for

pytestmark = pytest.mark.integration

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
INCOMING = f"00-{TRACE_ID}-b7ad6b7169203331-01"


def _header(message: object, name: str) -> str | None:
    for key, value in message.headers() or []:  # type: ignore[attr-defined]
        if key == name:
            return bytes(value).decode()
    return None


def test_a_commands_trace_id_reaches_the_kafka_header_and_the_projectors_log(
    db_settings: DatabaseSettings, kafka_settings: KafkaSettings
) -> None:
    with store_for(db_settings) as store, command_client(store, db_settings) as client:
        token = register_and_login(client, "trace@example.com")
        answer = client.post(
            "/tasks", json={"title": "follow me"}, headers={**auth(token), "traceparent": INCOMING}
        )
        assert answer.status_code == 201, answer.text
        task_id = answer.json()["id"]
        # The command API answers with its own span in the caller's trace.
        own = tracing.parse(answer.headers["traceparent"])
        assert own is not None and own.trace_id == TRACE_ID

        with running_relay(store, db_settings, kafka_settings):
            messages = consume_all(
                kafka_settings,
                until=lambda ms: any(json.loads(m.value()).get("task_id") == task_id for m in ms),
            )
    created = next(m for m in messages if json.loads(m.value()).get("task_id") == task_id)
    assert _header(created, "traceparent") == own.traceparent  # exactly the command's span
    registered = next(m for m in messages if json.loads(m.value())["type"] == "user.registered")
    registered_trace = tracing.parse(_header(registered, "traceparent"))
    assert registered_trace is not None and registered_trace.trace_id != TRACE_ID  # its own
    # The public event itself is unchanged: the trace is only in the header.
    assert "traceparent" not in json.loads(created.value())

    projector = start_projector_process(
        db_settings, kafka_settings, "trace-projector", LOG_LEVEL="DEBUG"
    )
    try:
        wait_until(
            lambda: any(row[0] == UUID(task_id) for row in snapshot(db_settings)["tasks"]),
            timeout=60,
            what="the task in the read table",
        )
    finally:
        logged = log_lines(stop_process(projector))
    event_id = json.loads(created.value())["event_id"]
    handled = [line for line in logged if line.get("event_id") == event_id]
    assert handled, "the projector logged nothing for the event"
    assert {line["trace_id"] for line in handled} == {TRACE_ID}


def test_a_digest_batch_has_a_trace_of_its_own_followed_to_the_mailers_log(
    db_settings: DatabaseSettings, kafka_settings: KafkaSettings
) -> None:
    batch_log = io.StringIO()
    handler = logging.StreamHandler(batch_log)
    handler.setFormatter(JsonFormatter("scheduler"))
    scheduler_log = logging.getLogger("scheduler.service")
    scheduler_log.addHandler(handler)
    level = scheduler_log.level
    scheduler_log.setLevel(logging.INFO)
    with running_smtp_server() as smtp, digest_system(db_settings, kafka_settings) as system:
        try:
            system.add_users(
                [ReadUser("ada@example.com", [Task("a")]), ReadUser("bob@example.com", [Task("b")])]
            )
            system.run_batch(date(2026, 11, 23))
        finally:
            scheduler_log.removeHandler(handler)
            scheduler_log.setLevel(level)
        messages = consume_all(
            kafka_settings,
            until=lambda ms: sum(b"daily_digest" in m.value() for m in ms) >= 2,
        )
        mailer = mailer_process(db_settings, kafka_settings, mailer_settings(smtp))
        try:
            smtp.wait_for(2)
        finally:
            mailer.terminate()
            _, err = mailer.communicate(timeout=30)
    digests = [m for m in messages if b"daily_digest" in m.value()]
    traces = {tracing.parse(_header(m, "traceparent")) for m in digests}
    batch_traces = {t.trace_id for t in traces if t is not None}
    assert len(batch_traces) == 1 and None not in traces  # one trace: the batch's
    (batch_trace,) = batch_traces
    completed = [json.loads(line) for line in batch_log.getvalue().splitlines()]
    assert {line["trace_id"] for line in completed if "digest batch" in line["msg"]} == {
        batch_trace
    }
    sent = [line for line in log_lines(err) if line.get("msg") == "digest sent"]
    assert len(sent) == 2 and {line["trace_id"] for line in sent} == {batch_trace}
