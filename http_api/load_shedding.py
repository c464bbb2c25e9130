"""Load shedding at the HTTP edge: past a bound on requests in flight, an API answers at once with
503 + Retry-After (the JSON body every 503 has) instead of queueing the request.

Why: users do not slow down when the API does (an open model), so an overloaded API that accepts
everything queues without bound. Measured (bench/bench_freshness.py at 1,000-2,000 commands/s on
the 2-core machine, docs/read-side.md): command latency grew to 15 s and, worse, the kernel's
accept queue overflowed (hundreds of thousands of ListenOverflows) and clients saw *connection
resets*, which they cannot tell from a crash. A quick 503 bounds the latency of what is accepted,
keeps connections flowing (they are answered and reused, not abandoned) and tells clients when to
retry. Probes and /metrics are never shed: an orchestrator must still see the process alive.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from http_api.errors import unavailable_response
from http_api.middleware import HttpMiddleware
from runtime import metrics

OVERLOADED_DETAIL = "overloaded: too many requests in progress, retry shortly"
NEVER_SHED = frozenset({"/health", "/ready", "/metrics"})


class InFlightLimit(HttpMiddleware):
    """Pure ASGI middleware (one event loop: a plain counter needs no lock)."""

    def __init__(self, app: ASGIApp, limit: int, never_shed: frozenset[str] = NEVER_SHED) -> None:
        super().__init__(app)
        self.limit = limit
        self.in_flight = 0
        self._never_shed = never_shed

    def lets_by(self, scope: Scope) -> bool:
        return scope["path"] in self._never_shed

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.in_flight >= self.limit:
            metrics.HTTP_REQUESTS_SHED.inc()
            # The 503 every other unavailability answers, with its own detail.
            await unavailable_response(OVERLOADED_DETAIL)(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
