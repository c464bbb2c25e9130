"""Each OpenAPI spec is a contract: schemathesis (every check, every phase: examples, coverage,
fuzzing, stateful) drives both APIs, served by uvicorn from their real create_app over the real
PostgreSQL, authenticated with a real token, and must find nothing: no undeclared status, no body
off its schema, no schema-valid request refused, no invalid one accepted, no 5xx."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import httpx
import psycopg
import pytest
import schemathesis
from psycopg.types.json import Jsonb
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events, from_schema

from command_api.bootstrap import bootstrap as create_command_app
from http_api.auth import issue_token
from query_api.bootstrap import create_app as create_query_app
from query_api.settings import QueryApiSettings
from runtime.settings import DatabaseSettings, auth_settings
from tests.support.http_server import serving
from tests.support.read_side import migrate
from tests.support.system import store_for

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 25  # per operation and phase: enough to reach every declared constraint


def contract_failures(base_url: str, token: str, *, endless: tuple[str, ...] = ()) -> list[str]:
    """Run schemathesis against the spec served at `base_url`; one line per failure or error."""
    config = SchemathesisConfig.from_dict(
        {
            "seed": 8,
            "checks": {"enabled": True},  # = `--checks all`
            "generation": {"max-examples": MAX_EXAMPLES},
            "headers": {"Authorization": f"Bearer {token}"},
            "request-timeout": 30,
            "base-url": base_url,
        }
    )
    spec = httpx.get(f"{base_url}/openapi.json").raise_for_status().json()
    for path in endless:  # a stream never ends: no phase may call it (its checks are by hand)
        del spec["paths"][path]
    schema = schemathesis.openapi.from_dict(spec, config=config)
    problems: set[str] = set()
    scenarios = 0
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            scenarios += 1
            for nodes in event.recorder.checks.values():
                for node in nodes:
                    if node.failure_info is not None:
                        failure = node.failure_info.failure
                        status = getattr(failure, "status_code", "")
                        problems.add(
                            f"{node.name}: {failure.title} {status}: {failure.message}\n"
                            f"    {node.failure_info.code_sample}"
                        )
        elif isinstance(event, events.NonFatalError | events.FatalError):
            problems.add(f"error: {event!r}")
    assert scenarios > 0, "schemathesis ran nothing"
    return sorted(problems)


def test_the_command_api_honours_its_openapi_spec(db_settings: DatabaseSettings) -> None:
    migrate(db_settings)  # the auth throttle's table
    with (
        store_for(db_settings) as store,
        serving(create_command_app(store, db=db_settings)) as base_url,
    ):
        account = {"email": "contract@example.com", "password": "correct horse"}
        assert httpx.post(f"{base_url}/auth/register", json=account).status_code == 201
        login = httpx.post(f"{base_url}/auth/login", json=account)
        token = login.json()["access_token"]
        failures = contract_failures(base_url, token)
    assert failures == [], "\n".join(failures)


def stream_contract_failures(base_url: str, token: str) -> list[str]:
    """GET /stream's declared answers, checked by hand (schemathesis would wait for its end)."""
    spec = httpx.get(f"{base_url}/openapi.json").json()["paths"]["/stream"]["get"]["responses"]
    bearer = {"Authorization": f"Bearer {token}"}
    problems = []
    with httpx.stream("GET", f"{base_url}/stream", headers=bearer, timeout=10) as ok:
        if "200" not in spec or ok.status_code != 200:
            problems.append(f"/stream: 200 expected and declared, got {ok.status_code}")
        elif not ok.headers["content-type"].startswith("text/event-stream"):
            problems.append(f"/stream: content-type {ok.headers['content-type']}")
    for headers, status in [({**bearer, "Last-Event-ID": "x1"}, 400), ({}, 401)]:
        answer = httpx.get(f"{base_url}/stream", headers=headers, timeout=10)
        if answer.status_code != status or str(status) not in spec or "detail" not in answer.json():
            problems.append(f"/stream: {status} expected and declared, got {answer.status_code}")
    return problems


def seed_read_model(db: DatabaseSettings, user: UUID) -> None:
    """A user with a few tasks and their creation events (more than one page of the smallest
    `limit`)."""
    t0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO users (id, email, created_at, version, position)"
            " VALUES (%s, 'reader@example.com', %s, 1, 1)",
            (user, t0),
        )
        for i in range(5):
            task = uuid4()
            conn.execute(
                "INSERT INTO tasks (id, user_id, title, done, created_at, done_at, version,"
                " position) VALUES (%s, %s, %s, %s, %s, %s, 1, %s)",
                (task, user, f"task {i}", i % 2 == 1, t0 + timedelta(seconds=i),
                 t0 if i % 2 else None, i + 2),
            )  # fmt: skip
            # its history (GET /tasks/{id}/history, /activity), as the projector records it
            conn.execute(
                "INSERT INTO task_events (position, user_id, task_id, type, occurred_at, version,"
                " changes) VALUES (%s, %s, %s, 'task.created', %s, 1, %s)",
                (i + 2, user, task, t0 + timedelta(seconds=i), Jsonb({"title": f"task {i}"})),
            )


def test_the_query_api_honours_its_openapi_spec(read_db: DatabaseSettings) -> None:
    user = uuid4()
    seed_read_model(read_db, user)
    token, _ = issue_token(user, auth_settings())
    settings = QueryApiSettings(READ_YOUR_WRITES_TIMEOUT_SECONDS=0.1)
    with serving(create_query_app(settings=settings, db=read_db)) as base_url:
        failures = contract_failures(base_url, token, endless=("/stream",))
        failures += stream_contract_failures(base_url, token)
    assert failures == [], "\n".join(failures)
