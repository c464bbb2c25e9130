"""Health for the worker processes (relay, projector, scheduler, mailer), which serve no API:
a tiny HTTP server on its own port answering `GET /health` (the process is alive) and
`GET /ready` (its main loop is making progress), for orchestrators and compose healthchecks."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

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

    def beat(self) -> None:
        self._last = self._clock()

    def fresh(self) -> bool:
        return self._clock() - self._last < self._stale_after


def serve_health(
    host: str, port: int, is_ready: Callable[[], bool], service: str
) -> ThreadingHTTPServer | None:
    """Serve /health and /ready in a daemon thread; None when port is 0 or already taken (a
    second worker on one host: it runs on, unprobed, and says so in its log)."""
    if port == 0:
        return None

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/health":
                self._answer(200, b'{"status":"ok"}')
            elif self.path == "/ready":
                try:
                    ready = is_ready()
                except Exception:
                    ready = False
                if ready:
                    self._answer(200, b'{"status":"ready"}')
                else:
                    self._answer(503, b'{"status":"unavailable"}')
            else:
                self._answer(404, b'{"detail":"Not Found"}')

        def _answer(self, code: int, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
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
