"""What the gateway answers itself, through the real nginx of the whole running system: the SPA
(its shell for deep links, a real 404 for a missing asset), the security headers on every answer
(once), and a JSON 404 for an unknown API path."""

from __future__ import annotations

import pytest

from tests.support.gateway_probe import Gateway, assert_security_headers, bearer

pytestmark = pytest.mark.e2e
pytest_plugins = ["tests.support.gateway_probe_fixtures"]  # gateway, token


def test_the_spa_is_served_with_the_security_headers(gateway: Gateway) -> None:
    index = gateway.request("GET", "/")
    gateway.assert_answer(index, 200, "gateway")
    assert index.headers["Content-Type"].startswith("text/html")
    assert 'id="auth-view"' in index.text
    assert '<script type="module" src="/app.js"></script>' in index.text
    assert_security_headers(index)

    # A deep link without an extension is the SPA shell; a missing asset is a real 404.
    deep = gateway.request("GET", "/some/deep/link")
    assert deep.status_code == 200
    assert 'id="auth-view"' in deep.text
    assert gateway.request("GET", "/missing.js").status_code == 404

    script = gateway.request("GET", "/app.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["Content-Type"]
    assert_security_headers(script)


def test_the_security_headers_are_on_api_answers_too_and_only_once(
    gateway: Gateway, token: str
) -> None:
    for response in [
        gateway.request("GET", "/api/me", headers=bearer(token)),
        gateway.create_task(token, "x"),
        gateway.request("GET", "/api/tasks"),
    ]:
        assert_security_headers(response)


def test_an_unknown_api_path_is_a_json_404_from_the_gateway_itself(gateway: Gateway) -> None:
    for method, path in [("GET", "/api/xyz"), ("POST", "/api/xyz"), ("GET", "/api/tasksfoo")]:
        response = gateway.request(method, path)
        assert response.status_code == 404, (method, path)
        assert gateway.answered_by(response) == "gateway", (method, path)
        assert response.headers["Content-Type"].startswith("application/json")
        assert response.json() == {"detail": "Not Found"}
        assert_security_headers(response)
