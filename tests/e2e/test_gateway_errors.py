"""The gateway's own errors are JSON, and an API it cannot reach is a 503 with Retry-After — on a
real nginx rendered from gateway/default.conf.template (infra/nginx.sh), in front of upstreams that
are down or that answer 503 themselves."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.support.e2e_system import ensure_nginx, free_ports
from tests.support.gateway import PrivateGateway, private_gateway

pytestmark = pytest.mark.e2e


class _Overloaded(BaseHTTPRequestHandler):
    """An API answering 503 itself, with its own Retry-After."""

    def do_GET(self) -> None:
        body = b'{"detail":"database unavailable"}'
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.send_header("Retry-After", "7")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def gateway() -> Iterator[PrivateGateway]:
    """nginx whose command API is down (nothing listens) and whose query API answers 503."""
    ensure_nginx()
    command_port, query_port = free_ports(2)
    query_api = ThreadingHTTPServer(("127.0.0.1", query_port), _Overloaded)
    threading.Thread(target=query_api.serve_forever, daemon=True).start()
    try:
        with private_gateway([f"127.0.0.1:{command_port}"], f"127.0.0.1:{query_port}") as gateway:
            yield gateway
    finally:
        query_api.shutdown()


def raw_request(gateway: PrivateGateway, data: bytes) -> tuple[str, dict[str, str], bytes]:
    """Send bytes no HTTP client library would send; (status line, headers, body)."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as s:
        s.sendall(data)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return status, headers, body


def test_a_command_api_that_is_down_answers_503_json_with_retry_after(
    gateway: PrivateGateway,
) -> None:
    response = httpx.post(f"{gateway.url}/api/tasks", json={"title": "x"}, timeout=10)

    assert response.status_code == 503
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.json() == {"detail": "service temporarily unavailable"}
    assert response.headers.get_list("Retry-After") == ["5"]
    assert response.headers["X-Frame-Options"] == "DENY", "security headers on errors too"


def test_an_apis_own_503_passes_through_with_its_own_retry_after_only(
    gateway: PrivateGateway,
) -> None:
    response = httpx.get(f"{gateway.url}/api/me", timeout=10)

    assert response.status_code == 503
    assert response.json() == {"detail": "database unavailable"}
    assert response.headers.get_list("Retry-After") == ["7"]


def test_a_body_over_the_limit_is_a_json_413(gateway: PrivateGateway) -> None:
    response = httpx.post(
        f"{gateway.url}/api/tasks",
        content=b"x" * 100_000,
        headers={"Content-Type": "application/json"},
        timeout=10,
    )

    assert response.status_code == 413
    assert response.json() == {"detail": "request body too large (at most 64 KB)"}
    assert "Retry-After" not in response.headers


def test_oversized_headers_are_a_json_431(gateway: PrivateGateway) -> None:
    response = httpx.get(f"{gateway.url}/api/me", headers={"X-Big": "a" * 20_000}, timeout=10)

    assert response.status_code == 431
    assert response.json() == {"detail": "request headers too large"}


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GARBAGE\r\n\r\n",
        b"GET /api/me HTTP/1.1\r\nHost: x\r\nNot a header line\r\n\r\n",
        b"POST /api/tasks HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    ],
    ids=["garbage request line", "malformed header", "non-numeric content length"],
)
def test_a_malformed_request_is_a_json_400_not_an_html_page(
    gateway: PrivateGateway, request_bytes: bytes
) -> None:
    status, headers, body = raw_request(gateway, request_bytes)

    assert status.startswith("HTTP/1.1 400"), status
    assert headers["content-type"].startswith("application/json")
    assert body == b'{"detail":"malformed request"}'
