"""The fixtures of the gateway's e2e tests, loaded by `pytest_plugins` in the test modules that use
them: both APIs' OpenAPI documents, a probing client on the gateway (tests.support.gateway_probe)
and a user's token, once per module."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.e2e_system import System
from tests.support.gateway_probe import Gateway


@pytest.fixture(scope="module")
def openapi(system: System) -> dict[str, dict[str, Any]]:
    """Both services' OpenAPI documents, read from them directly (not through the gateway)."""
    with httpx.Client(timeout=10) as client:
        return {
            name: client.get(f"{system.url(service)}/openapi.json").raise_for_status().json()
            for name, service in (("command", "command_api"), ("query", "query_api"))
        }


@pytest.fixture(scope="module")
def gateway(system: System) -> Iterator[Gateway]:
    client = Gateway(system)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def token(gateway: Gateway) -> str:
    email = f"routes-{uuid.uuid4().hex[:10]}@example.com"
    credentials = {"email": email, "password": "correct horse battery"}
    assert gateway.request("POST", "/api/auth/register", json=credentials).status_code == 201
    login = gateway.request("POST", "/api/auth/login", json=credentials)
    assert login.status_code == 200, login.text
    return str(login.json()["access_token"])
