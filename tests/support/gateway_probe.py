"""An HTTP client on the e2e system's gateway that tells which service answered a request (from
the gateway's access log, found by a unique `probe` query parameter), and the checks the gateway
tests make with it: which API an operation belongs to (by both OpenAPI documents), the security
headers. Its fixtures: tests.support.gateway_probe_fixtures."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any, Literal

import httpx

from tests.support.e2e_system import System

Service = Literal["command", "query", "gateway"]
SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


class Gateway:
    """An HTTP client on the gateway that can tell which upstream answered a request."""

    def __init__(self, system: System) -> None:
        self.system = system
        self.http = httpx.Client(base_url=system.gateway_url, timeout=30)

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        probe = uuid.uuid4().hex
        params = {**kwargs.pop("params", {}), "probe": probe}
        return self.http.request(method, path, params=params, **kwargs)

    def answered_by(self, response: httpx.Response) -> Service:
        """The service behind a response, from the gateway's access log ('up=<address>')."""
        probe = response.request.url.params["probe"]
        deadline = time.monotonic() + 5  # nginx logs right after the response is sent
        while True:
            text = self.system.access_log.read_text(encoding="utf-8", errors="replace")
            lines = [line for line in text.splitlines() if f"probe={probe}" in line]
            if lines or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert len(lines) == 1, f"expected one access-log line for probe {probe}, got {lines}"
        match = re.search(r" up=(\S+)", lines[0])
        assert match, f"no up= field in the access-log line {lines[0]!r}"
        upstream = match.group(1)
        if upstream == self.system.upstream("command_api"):
            return "command"
        if upstream == self.system.upstream("query_api"):
            return "query"
        assert upstream == "-", f"unexpected upstream {upstream!r} in {lines[0]!r}"
        return "gateway"

    def create_task(self, token: str, title: str) -> httpx.Response:
        """POST /api/tasks as the user of `token`."""
        return self.request("POST", "/api/tasks", json={"title": title}, headers=bearer(token))

    def assert_answer(self, response: httpx.Response, status: int, by: Service) -> None:
        """`response` has `status` (else its body is shown) and the service `by` gave it."""
        assert response.status_code == status, response.text
        assert self.answered_by(response) == by

    def close(self) -> None:
        self.http.close()


def operations(openapi: dict[str, Any]) -> set[tuple[str, str]]:
    return {
        (method.upper(), path)
        for path, item in openapi["paths"].items()
        for method in item
        if method in {"get", "head", "post", "put", "patch", "delete"}
    }


def bearer(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


def only_on(
    openapi: dict[str, dict[str, Any]], service: Literal["command", "query"], op: tuple[str, str]
) -> None:
    other = "query" if service == "command" else "command"
    assert op in operations(openapi[service]), f"{op} is not an operation of the {service} API"
    assert op not in operations(openapi[other]), f"{op} is an operation of the {other} API too"


def assert_security_headers(response: httpx.Response) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert response.headers.get(name) == value, (name, dict(response.headers))
    csp = response.headers.get("Content-Security-Policy", "")
    assert "default-src 'self'" in csp, csp
    assert "frame-ancestors 'none'" in csp, csp
    assert response.headers.get_list("Content-Security-Policy") == [csp], "CSP sent twice"
