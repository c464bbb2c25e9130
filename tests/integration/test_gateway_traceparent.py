"""The gateway (the real nginx with gateway/default.conf.template) passes the W3C `traceparent`
through unchanged to the API, and the API's answer header back to the client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).parents[2]
GATEWAY_PORT, UPSTREAM_PORT, UNUSED_PORT = 27080, 27081, 27082  # this suite's private range
SENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
ANSWERED = "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"


class _Upstream(BaseHTTPRequestHandler):
    """Stands in for the command API: records the traceparent it got, answers with its own."""

    seen: list[str | None] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).seen.append(self.headers.get("traceparent"))
        body = json.dumps({"ok": True}).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("traceparent", ANSWERED)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[str]:
    _Upstream.seen = []
    upstream = ThreadingHTTPServer(("127.0.0.1", UPSTREAM_PORT), _Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    env = {
        **os.environ,
        "GATEWAY_PORT": str(GATEWAY_PORT),
        "COMMAND_API_UPSTREAM": f"127.0.0.1:{UPSTREAM_PORT}",
        "QUERY_API_UPSTREAM": f"127.0.0.1:{UNUSED_PORT}",
        "NGINX_DATA": str(tmp_path / "nginx"),
        "PYTHON": os.environ.get("PYTHON", sys.executable),
    }
    nginx = subprocess.Popen(
        [str(ROOT / "infra" / "nginx.sh"), "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{GATEWAY_PORT}"
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                urllib.request.urlopen(f"{url}/gateway-health", timeout=1).close()
                break
            except (urllib.error.URLError, ConnectionError):
                if nginx.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"nginx did not start: {nginx.stderr}") from None
                time.sleep(0.1)
        yield url
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
        upstream.shutdown()
        upstream.server_close()


def test_the_gateway_passes_the_traceparent_to_the_api_and_its_answer_back(gateway: str) -> None:
    request = urllib.request.Request(
        f"{gateway}/api/tasks",
        data=b'{"title": "x"}',
        headers={"Content-Type": "application/json", "traceparent": SENT},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 201
        assert answer.headers["traceparent"] == ANSWERED
    assert _Upstream.seen == [SENT]
