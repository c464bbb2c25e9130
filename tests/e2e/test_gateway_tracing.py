"""The gateway passes the W3C `traceparent` through, both ways: a command sent to the real nginx
with a trace id is recorded, and published on Kafka, under that trace id."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from runtime import tracing
from runtime.settings import KafkaSettings
from tests.support.e2e_system import System
from tests.support.infra import consume_all

pytestmark = pytest.mark.e2e

TRACE_ID = "5b8aa5a2d2c872e8321cf37308d69df2"
INCOMING = f"00-{TRACE_ID}-051581bf3cb55c13-01"


def test_a_traceparent_sent_to_the_gateway_reaches_the_command_api_and_kafka(
    system: System,
) -> None:
    with httpx.Client(base_url=system.gateway_url, timeout=30) as http:
        credentials = {
            "email": f"trace-{uuid.uuid4().hex[:8]}@example.com",
            "password": "pw-long-1",
        }
        assert http.post("/api/auth/register", json=credentials).status_code == 201
        token = http.post("/api/auth/login", json=credentials).json()["access_token"]
        answer = http.post(
            "/api/tasks",
            json={"title": "traced through nginx"},
            headers={"Authorization": f"Bearer {token}", "traceparent": INCOMING},
        )
    assert answer.status_code == 201, answer.text
    own = tracing.parse(answer.headers.get("traceparent"))
    assert own is not None and own.trace_id == TRACE_ID, "the gateway dropped the trace"
    task_id = answer.json()["id"]

    kafka = KafkaSettings(KAFKA_TOPIC=system.topic)
    messages = consume_all(
        kafka, until=lambda ms: any(json.loads(m.value()).get("task_id") == task_id for m in ms)
    )
    created = [m for m in messages if json.loads(m.value()).get("task_id") == task_id]
    assert created, "the task's event never reached Kafka"
    headers = dict(created[0].headers() or [])
    assert headers.get("traceparent") == own.traceparent.encode()
