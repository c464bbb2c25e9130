"""The HTTP metrics middleware: route template (never the raw path), status and latency, through
the same install_http_metrics both APIs use."""

from __future__ import annotations

import time

import pytest
from fastapi import FastAPI, HTTPException
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from http_api.metrics import UNMATCHED, install_http_metrics
from runtime.metrics import HTTP

NAME = "http_request_duration_seconds"


def count(method: str, route: str, status: int) -> float:
    labels = {"method": method, "route": route, "status": str(status)}
    return REGISTRY.get_sample_value(f"{NAME}_count", labels) or 0.0


def bucket(method: str, route: str, status: int, le: str) -> float:
    labels = {"method": method, "route": route, "status": str(status), "le": le}
    return REGISTRY.get_sample_value(f"{NAME}_bucket", labels) or 0.0


@pytest.fixture
def client() -> TestClient:
    app = FastAPI()
    install_http_metrics(app, *HTTP)

    @app.get("/things/{thing_id}")
    def get_thing(thing_id: int) -> dict[str, int]:
        if thing_id == 404:
            raise HTTPException(404, "no such thing")
        return {"id": thing_id}

    @app.post("/slow")
    def slow() -> dict[str, str]:
        time.sleep(0.03)
        return {"ok": "yes"}

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    return TestClient(app, raise_server_exceptions=False)


def test_requests_are_counted_by_route_template_not_by_raw_path(client: TestClient) -> None:
    before = count("GET", "/things/{thing_id}", 200)
    for thing_id in (1, 2, 3):
        assert client.get(f"/things/{thing_id}").status_code == 200
    assert count("GET", "/things/{thing_id}", 200) - before == 3
    assert count("GET", "/things/1", 200) == 0


def test_the_status_label_is_the_status_the_client_got(client: TestClient) -> None:
    before_404 = count("GET", "/things/{thing_id}", 404)
    before_422 = count("GET", "/things/{thing_id}", 422)
    before_500 = count("GET", "/boom", 500)
    assert client.get("/things/404").status_code == 404
    assert client.get("/things/not-a-number").status_code == 422
    assert client.get("/boom").status_code == 500
    assert count("GET", "/things/{thing_id}", 404) - before_404 == 1
    assert count("GET", "/things/{thing_id}", 422) - before_422 == 1
    assert count("GET", "/boom", 500) - before_500 == 1


def test_a_path_no_route_matches_is_labelled_unmatched(client: TestClient) -> None:
    before = count("GET", UNMATCHED, 404)
    assert client.get("/no/such/path/123").status_code == 404
    assert client.get("/no/such/path/456").status_code == 404
    assert count("GET", UNMATCHED, 404) - before == 2


def test_latency_lands_in_the_histogram_buckets_it_belongs_to(client: TestClient) -> None:
    fast, slow = bucket("POST", "/slow", 200, "0.025"), bucket("POST", "/slow", 200, "0.05")
    inf = bucket("POST", "/slow", 200, "+Inf")
    assert client.post("/slow").status_code == 200
    assert bucket("POST", "/slow", 200, "0.025") - fast == 0  # slept 30 ms: not under 25 ms
    assert bucket("POST", "/slow", 200, "0.05") - slow in (0, 1)  # a loaded machine may be slow
    assert bucket("POST", "/slow", 200, "+Inf") - inf == 1
    total = REGISTRY.get_sample_value(
        f"{NAME}_sum", {"method": "POST", "route": "/slow", "status": "200"}
    )
    assert total is not None and total >= 0.03


def test_metrics_are_served_in_the_text_format_and_not_counted_themselves(
    client: TestClient,
) -> None:
    client.get("/things/7")
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    families = {f.name for f in text_string_to_metric_families(answer.text)}
    assert NAME in families
    assert count("GET", "/metrics", 200) == 0


def test_both_apis_serve_metrics_outside_their_openapi_spec() -> None:
    from command_api.bootstrap import bootstrap as command_app
    from query_api.bootstrap import create_app as query_app

    for app in (command_app(), query_app()):
        paths = {getattr(r, "path", None) for r in app.routes}
        assert "/metrics" in paths
        assert "/metrics" not in app.openapi()["paths"]
