"""Health for the worker processes (relay, projector, scheduler, mailer), which serve no API:
a tiny HTTP server on its own port answering `GET /health` (the process is alive) and
`GET /ready` (its main loop is making progress), for orchestrators and compose healthchecks, and
`GET /metrics` (the families the process registered in runtime.metrics, Prometheus text format)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from runtime import metrics

log = logging.getLogger(__name__)


class Heartbeat:
    """A worker's loop beats on every turn; `fresh()` turns false if the loop is stuck
    (blocked on a dead dependency, retrying forever) for longer than `stale_after` seconds."""

    def __init__(
        self, stale_after: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._stale_after = stale_after
        self._clock = clock
        self._last = clock()
        self._halted: str | None = None

    def beat(self) -> None:
        self._last = self._clock()

    def fresh(self) -> bool:
        return self._clock() - self._last < self._stale_after

    def halt(self, reason: str) -> None:
        """The loop stopped taking work on purpose (a bug it will not skip): not ready, for good,
        with `reason` in the /ready body, until an operator restarts the process."""
        self._halted = reason

    @property
    def halted(self) -> str | None:
        return self._halted

    def readiness(self) -> Readiness:
        if (reason := self.halted) is not None:
            return Readiness(False, reason)
        if not self.fresh():
            return Readiness(False, f"main loop has not turned for {self._stale_after:g}s")
        return Readiness(True)


@dataclass(frozen=True)
class Readiness:
    """/ready's answer: ready or not, and why not (in the JSON body)."""

    ready: bool
    reason: str | None = None


def serve_health(
    host: str, port: int, is_ready: Callable[[], bool | Readiness], service: str
) -> ThreadingHTTPServer | None:
    """Serve /health and /ready in a daemon thread; None when port is 0 or already taken (a
    second worker on one host: it runs on, unprobed, and says so in its log). `is_ready` answers
    a bool, or a Readiness whose reason goes into the 503 body."""
    if port == 0:
        return None

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/metrics":
                self._answer(200, metrics.exposition(), metrics.CONTENT_TYPE)
            elif self.path == "/health":
                self._answer(200, b'{"status":"ok"}')
            elif self.path == "/ready":
                try:
                    answer = is_ready()
                except Exception:
                    answer = Readiness(False, "readiness check failed")
                state = answer if isinstance(answer, Readiness) else Readiness(answer)
                if state.ready:
                    self._answer(200, b'{"status":"ready"}')
                else:
                    body: dict[str, str] = {"status": "unavailable"}
                    if state.reason:
                        body["reason"] = state.reason
                    self._answer(503, json.dumps(body).encode())
            else:
                self._answer(404, b'{"detail":"Not Found"}')

        def _answer(self, code: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # probes every few seconds would drown the structured logs

    try:
        server = ThreadingHTTPServer((host, port), Handler)
    except OSError as e:
        log.warning("health endpoint not started", extra={"port": port, "error": str(e)})
        return None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name=f"{service}-health", daemon=True).start()
    log.info("health endpoint listening", extra={"host": host, "port": port})
    return server
