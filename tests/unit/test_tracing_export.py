"""With OTEL_ENABLED, spans are exported over OTLP/HTTP to the configured endpoint: a real HTTP
receiver on loopback, decoded with OpenTelemetry's own protobuf messages."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from runtime import tracing

PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class _Receiver(BaseHTTPRequestHandler):
    bodies: list[tuple[str, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).bodies.append((self.path, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    _Receiver.bodies = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_with_otel_enabled_spans_reach_the_otlp_endpoint_as_children_of_the_callers_span(
    receiver: str,
) -> None:
    settings = tracing.TracingSettings(OTEL_ENABLED=True, OTEL_EXPORTER_OTLP_ENDPOINT=receiver)
    assert tracing.configure_tracing("test-service", settings)
    try:
        with tracing.span("handle command", parent=PARENT) as ctx:
            assert tracing.current() == ctx
    finally:
        tracing.shutdown_tracing()  # flushes the batch processor
    assert ctx.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    paths = {path for path, _ in _Receiver.bodies}
    assert paths == {"/v1/traces"}
    spans = []
    for _, body in _Receiver.bodies:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource_spans in request.resource_spans:
            service = {a.key: a.value.string_value for a in resource_spans.resource.attributes}[
                "service.name"
            ]
            assert service == "test-service"
            spans += [s for scope in resource_spans.scope_spans for s in scope.spans]
    assert [s.name for s in spans] == ["handle command"]
    (span,) = spans
    assert span.trace_id.hex() == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert span.parent_span_id.hex() == "00f067aa0ba902b7"
    assert span.span_id.hex() == ctx.span_id
