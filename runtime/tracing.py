"""Trace context across the hop: HTTP request → stored event → Kafka header → consumer logs.

The W3C `traceparent` (https://www.w3.org/TR/trace-context/) is the one format everywhere:
`00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`. The current context lives in a contextvar
(per request in the APIs, per message in the consumers, per batch in the scheduler), and
runtime/logging.py's JsonFormatter adds its `trace_id`/`span_id` to every log line.

Propagation and logging never need the OpenTelemetry SDK: parsing and generating a traceparent is
a regex and `os.urandom` (cheap on the command hot path). The SDK with its OTLP/HTTP exporter is
loaded only when `OTEL_ENABLED=true` (off by default: no exporter, no background thread); then
`span()` also records real spans, children of the incoming context, exported to
`OTEL_EXPORTER_OTLP_ENDPOINT`.
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)

HEADER = "traceparent"
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")


@dataclass(frozen=True, slots=True)
class TraceContext:
    trace_id: str  # 32 lowercase hex
    span_id: str  # 16 lowercase hex
    flags: str = "01"

    @property
    def traceparent(self) -> str:
        return f"00-{self.trace_id}-{self.span_id}-{self.flags}"

    def child(self) -> TraceContext:
        """A new span in the same trace (the hop's own span id)."""
        return TraceContext(self.trace_id, os.urandom(8).hex(), self.flags)


def parse(value: str | bytes | None) -> TraceContext | None:
    """A valid traceparent, or None (absent, malformed, all-zero ids, version ff)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    m = _TRACEPARENT.match(value.strip())
    if m is None:
        return None
    version, trace_id, span_id, flags, rest = m.groups()
    if version == "ff" or (version == "00" and rest) or set(trace_id) == {"0"}:
        return None
    if set(span_id) == {"0"}:
        return None
    return TraceContext(trace_id, span_id, flags)


def new_context() -> TraceContext:
    """A fresh trace (sampled), for a request that came without one or a scheduler batch."""
    return TraceContext(os.urandom(16).hex(), os.urandom(8).hex(), "01")


def continue_or_start(value: str | bytes | None) -> TraceContext:
    """The hop's own span in the caller's trace, or a new trace if the caller sent none."""
    parent = parse(value)
    return parent.child() if parent else new_context()


_current: contextvars.ContextVar[TraceContext | None] = contextvars.ContextVar(
    "trace_context", default=None
)


def current() -> TraceContext | None:
    return _current.get()


def current_traceparent() -> str | None:
    ctx = _current.get()
    return ctx.traceparent if ctx else None


@contextmanager
def bound(ctx: TraceContext | None) -> Iterator[TraceContext | None]:
    """Make `ctx` the current trace context for the block (logs carry its ids)."""
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


def set_current(ctx: TraceContext | None) -> contextvars.Token[TraceContext | None]:
    return _current.set(ctx)


def reset_current(token: contextvars.Token[TraceContext | None]) -> None:
    _current.reset(token)


def from_kafka_headers(headers: Mapping[str, Any] | Iterable[tuple[str, Any]] | None) -> str | None:
    """The traceparent header of a Kafka message (confluent-kafka gives a list of pairs)."""
    if not headers:
        return None
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    for key, value in pairs:
        if key == HEADER:
            return value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
    return None


# --- the OpenTelemetry SDK, off by default ------------------------------------------------------


class TracingSettings(BaseSettings):
    """OTEL_ENABLED turns span export on; the endpoint is OpenTelemetry's standard variable."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    OTEL_ENABLED: bool = False
    OTEL_EXPORTER_OTLP_ENDPOINT: str = "http://127.0.0.1:4318"
    OTEL_SERVICE_NAME: str = ""


_tracer: Any = None  # an opentelemetry Tracer once configure_tracing() enabled it


def configure_tracing(service: str, settings: TracingSettings | None = None) -> bool:
    """Set up span export if OTEL_ENABLED; True if enabled. Off: imports nothing of the SDK."""
    global _tracer
    settings = settings or TracingSettings()
    if not settings.OTEL_ENABLED:
        return False
    # Imported here so the default (off) path never loads the SDK or starts its export thread.
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    endpoint = settings.OTEL_EXPORTER_OTLP_ENDPOINT.rstrip("/") + "/v1/traces"
    provider = TracerProvider(
        resource=Resource.create({"service.name": settings.OTEL_SERVICE_NAME or service})
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    _tracer = provider.get_tracer("todo")
    _providers.append(provider)
    log.info("tracing export enabled", extra={"otlp_endpoint": endpoint})
    return True


_providers: list[Any] = []


def exporting() -> bool:
    """True when spans are exported (OTEL_ENABLED): worth creating spans that are not logged."""
    return _tracer is not None


def shutdown_tracing() -> None:
    """Flush and stop the exporters (no-op when tracing export is off)."""
    global _tracer
    while _providers:
        _providers.pop().shutdown()
    _tracer = None


@contextmanager
def span(name: str, parent: str | bytes | None = None, **attributes: Any) -> Iterator[TraceContext]:
    """One hop's span: a child of `parent` (a traceparent; else of the current context; else a
    new trace), current for the block. Exported when OTEL_ENABLED, else only propagated/logged."""
    incoming = parse(parent) if parent is not None else current()
    if _tracer is None:
        ctx = incoming.child() if incoming else new_context()
        with bound(ctx):
            yield ctx
        return
    yield from _sdk_span(name, incoming, attributes)


def _sdk_span(
    name: str, incoming: TraceContext | None, attributes: dict[str, Any]
) -> Iterator[TraceContext]:
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    otel_parent = None
    if incoming is not None:
        parent_span = NonRecordingSpan(
            SpanContext(
                trace_id=int(incoming.trace_id, 16),
                span_id=int(incoming.span_id, 16),
                is_remote=True,
                trace_flags=TraceFlags(int(incoming.flags, 16)),
            )
        )
        otel_parent = trace.set_span_in_context(parent_span)
    with _tracer.start_as_current_span(name, context=otel_parent, attributes=attributes) as s:
        sc = s.get_span_context()
        ctx = TraceContext(
            f"{sc.trace_id:032x}", f"{sc.span_id:016x}", f"{int(sc.trace_flags):02x}"
        )
        with bound(ctx):
            yield ctx


class TraceMiddleware:
    """Pure ASGI: each HTTP request runs in its own span of the caller's trace (the `traceparent`
    request header, passed on by the gateway) or of a new trace; the answer carries the
    request's `traceparent` so a client can quote it."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming: bytes | None = None
        for key, value in scope["headers"]:
            if key == b"traceparent":
                incoming = value
                break
        if _tracer is None:  # the default hot path: no generator-based context manager
            ctx = continue_or_start(incoming)
            token = _current.set(ctx)
            try:
                await self._call(ctx, scope, receive, send)
            finally:
                _current.reset(token)
            return
        route = f"{scope.get('method')} {scope.get('path')}"
        with span(route, parent=incoming if incoming is not None else b"") as ctx:
            await self._call(ctx, scope, receive, send)

    async def _call(self, ctx: TraceContext, scope: Any, receive: Any, send: Any) -> None:
        header = (b"traceparent", ctx.traceparent.encode())

        async def send_with_trace(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        await self.app(scope, receive, send_with_trace)
