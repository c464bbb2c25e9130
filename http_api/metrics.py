"""HTTP metrics for both APIs: a pure ASGI middleware (no BaseHTTPMiddleware task per request)
observing `http_request_duration_seconds{method, route, status}`, and the `GET /metrics` route.

The route label is the matched route's template (`/tasks/{task_id}`), read from the scope the
router filled in, never the raw path: ids cannot blow up the label set. A request no route matched
is labelled `unmatched`. /metrics itself is not observed (a scrape every few seconds is noise).
"""

from __future__ import annotations

import time
from typing import Any

from fastapi import FastAPI, Response
from fastapi.telemetry import TelemetryConfig
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from http_api.middleware import HttpMiddleware
from runtime import metrics

# FastAPI's own OpenTelemetry instrumentation, off in both APIs: they are traced by
# runtime.tracing.TraceMiddleware and measured by HttpMetricsMiddleware. Left on, it would record
# both again once a global OpenTelemetry provider is set, and until then it still looks the
# providers up on every request (~3 µs: about 1% of the command API's CPU per POST /tasks).
FASTAPI_TELEMETRY_OFF: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}

METRICS_PATH = "/metrics"
UNMATCHED = "unmatched"


class HttpMetricsMiddleware(HttpMiddleware):
    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app)
        # children cached by label tuple: one dict lookup per request instead of labels()'s checks
        self._children: dict[tuple[str, str, int], Any] = {}

    def lets_by(self, scope: Scope) -> bool:
        return bool(scope["path"] == METRICS_PATH)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        status = 500  # what the client gets if the app raises before answering
        started = time.perf_counter()

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or UNMATCHED
            key = (scope["method"], template, status)
            child = self._children.get(key)
            if child is None:
                child = metrics.HTTP_REQUEST_DURATION.labels(key[0], key[1], str(status))
                self._children[key] = child
            child.observe(time.perf_counter() - started)


def install_http_metrics(app: FastAPI, *families: Any) -> None:
    """Observe every request of `app` and serve this process's metrics on GET /metrics (not in
    the OpenAPI spec: it is for Prometheus, not for clients)."""
    metrics.register(*families)
    app.add_middleware(HttpMetricsMiddleware)

    @app.get(METRICS_PATH, include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)
