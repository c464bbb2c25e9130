"""Trace context: W3C traceparent parsing/generation, the log fields, the HTTP middleware."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from http_api.errors import install_error_handlers
from runtime import tracing
from runtime.logging import JsonFormatter

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_valid_traceparent_is_parsed_into_its_ids() -> None:
    ctx = tracing.parse(VALID)
    assert ctx == tracing.TraceContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "01")
    assert ctx is not None and ctx.traceparent == VALID
    assert tracing.parse(VALID.encode()) == ctx


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",  # upper case
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",  # all-zero span id
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # forbidden version
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",  # v00 has 4 fields
        b"\xff\xfe",
    ],
)
def test_an_invalid_traceparent_is_ignored(value: str | bytes | None) -> None:
    assert tracing.parse(value) is None


def test_a_later_version_with_more_fields_is_accepted_as_its_first_four() -> None:
    ctx = tracing.parse("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future")
    assert ctx is not None and ctx.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"


def test_continuing_keeps_the_trace_id_with_a_new_span_id() -> None:
    ctx = tracing.continue_or_start(VALID)
    assert ctx.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert ctx.span_id != "00f067aa0ba902b7"
    assert tracing.parse(ctx.traceparent) == ctx


def test_without_a_valid_parent_a_new_trace_is_started() -> None:
    a, b = tracing.continue_or_start(None), tracing.continue_or_start("nonsense")
    assert a.trace_id != b.trace_id
    assert tracing.parse(a.traceparent) == a and tracing.parse(b.traceparent) == b


def test_bound_sets_the_current_context_only_for_its_block() -> None:
    ctx = tracing.new_context()
    assert tracing.current() is None
    with tracing.bound(ctx):
        assert tracing.current() == ctx
        assert tracing.current_traceparent() == ctx.traceparent
    assert tracing.current() is None


def test_the_traceparent_is_found_among_kafka_headers() -> None:
    assert tracing.from_kafka_headers([("type", b"x"), ("traceparent", VALID.encode())]) == VALID
    assert tracing.from_kafka_headers({"traceparent": VALID.encode()}) == VALID
    assert tracing.from_kafka_headers([("type", b"x")]) is None
    assert tracing.from_kafka_headers(None) is None


def _formatted(message: str) -> dict[str, object]:
    record = logging.makeLogRecord({"msg": message, "levelname": "INFO", "name": "t"})
    result: dict[str, object] = json.loads(JsonFormatter("test").format(record))
    return result


def test_log_lines_carry_the_current_trace_and_span_ids() -> None:
    ctx = tracing.parse(VALID)
    with tracing.bound(ctx):
        entry = _formatted("inside")
    assert entry["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert entry["span_id"] == "00f067aa0ba902b7"
    assert "trace_id" not in _formatted("outside")


def _app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/where")
    def where() -> dict[str, str | None]:  # sync: runs in the threadpool with the request's context
        return {"traceparent": tracing.current_traceparent()}

    return app


def test_a_request_continues_the_callers_trace_and_answers_with_its_own_span() -> None:
    with TestClient(_app()) as client:
        answer = client.get("/where", headers={"traceparent": VALID})
    seen = tracing.parse(answer.json()["traceparent"])
    assert seen is not None and seen.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert seen.span_id != "00f067aa0ba902b7"
    assert answer.headers["traceparent"] == seen.traceparent


def test_a_request_without_a_valid_traceparent_gets_a_new_trace() -> None:
    with TestClient(_app()) as client:
        first = client.get("/where", headers={"traceparent": "bogus"}).json()["traceparent"]
        second = client.get("/where").json()["traceparent"]
    a, b = tracing.parse(first), tracing.parse(second)
    assert a is not None and b is not None and a.trace_id != b.trace_id


def test_with_export_off_no_sdk_is_loaded_and_no_thread_started() -> None:
    """The default: a process that configured logging (and so tracing) has not imported the
    OpenTelemetry SDK and runs no exporter thread, yet logs trace ids."""
    script = (
        "import sys, threading\n"
        "from runtime.logging import configure_logging\n"
        "from runtime import tracing\n"
        "configure_logging('probe')\n"
        "with tracing.span('x', parent=tracing.new_context().traceparent):\n"
        "    pass\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')),"
        " threading.active_count())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[] 1"
