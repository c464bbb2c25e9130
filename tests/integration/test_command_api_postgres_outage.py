"""A PostgreSQL restart under the APIs (issue 8, "recovery without a hand on it"): while the
database is down they answer 503 + Retry-After (JSON), never a 500 or a reset connection; once it
is back they recover by themselves, and nothing they acknowledged is lost. PostgreSQL here is a
private instance (infra/postgres.sh with its own data directory and port) that the test stops and
starts: the shared server is never touched."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID, uuid4

import httpx
import pytest

from command_api.bootstrap import bootstrap as create_command_app
from command_api.bootstrap import command_store_env
from event_store.application import TodoStore, store_env
from http_api.auth import issue_token
from query_api.bootstrap import create_app as create_query_app
from query_api.settings import QueryApiSettings
from runtime.settings import DatabaseSettings, auth_settings
from tests.support.http_server import free_port, serving
from tests.support.read_side import migrate

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
RECOVERY_BOUND_SECONDS = 20  # measured: 1-5 s (the pool frees a dead slot after 2 s)


@dataclass
class PrivatePostgres:
    env: dict[str, str]
    settings: DatabaseSettings

    def _run(self, action: str) -> None:
        subprocess.run(
            [str(ROOT / "infra" / "postgres.sh"), action],
            env=self.env,
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        self._run("start")

    def stop(self) -> None:
        self._run("stop")


@pytest.fixture
def private_postgres() -> Iterator[PrivatePostgres]:
    # Under /var/tmp: as root the script runs the server as `postgres`, which cannot enter /tmp's
    # per-user pytest directories.
    data = tempfile.mkdtemp(prefix="todo-pg-outage-", dir="/var/tmp")
    os.chmod(data, 0o755)
    port = free_port()
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "PGDATA_DIR": data,
        "POSTGRES_PORT": str(port),
        "POSTGRES_DB": "todo",
        "POSTGRES_FAST": "1",
    }
    postgres = PrivatePostgres(env, DatabaseSettings(POSTGRES_PORT=port, POSTGRES_DB="todo"))
    postgres.start()
    try:
        yield postgres
    finally:
        postgres.stop()
        shutil.rmtree(data, ignore_errors=True)


PROMPT_503_SECONDS = 8  # the pool's timeout for handing out a connection is 5 s


def assert_unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.elapsed.total_seconds() < PROMPT_503_SECONDS
    assert response.json() == {"detail": "service temporarily unavailable"}
    assert int(response.headers["Retry-After"]) >= 1


def until_recovered(request: Callable[[], httpx.Response], ok: int) -> tuple[float, list[int]]:
    """Repeat `request` until it answers `ok`; returns (seconds taken, every status seen)."""
    started = time.monotonic()
    seen: list[int] = []
    while time.monotonic() - started < RECOVERY_BOUND_SECONDS:
        response = request()
        seen.append(response.status_code)
        if response.status_code == ok:
            return time.monotonic() - started, seen
        assert_unavailable(response)
        time.sleep(0.2)
    raise AssertionError(f"no recovery within {RECOVERY_BOUND_SECONDS} s: {seen}")


def test_the_command_api_answers_503_while_postgres_is_down_and_recovers_losing_nothing(
    private_postgres: PrivatePostgres,
) -> None:
    db = private_postgres.settings
    migrate(db)  # the auth throttle's table
    store = TodoStore(env=command_store_env(db), command_timeout=10)  # as command_api.bootstrap
    acknowledged: list[str] = []
    try:
        with (
            serving(create_command_app(store, db=db)) as base_url,
            httpx.Client(base_url=base_url, timeout=60) as http,
        ):
            account = {"email": "outage@example.com", "password": "correct horse"}
            assert http.post("/auth/register", json=account).status_code == 201
            token = http.post("/auth/login", json=account).json()["access_token"]
            bearer = {"Authorization": f"Bearer {token}"}

            def create() -> httpx.Response:
                response = http.post("/tasks", json={"title": "t"}, headers=bearer)
                if response.status_code == 201:
                    acknowledged.append(response.json()["id"])
                return response

            for _ in range(5):
                assert create().status_code == 201

            private_postgres.stop()
            for _ in range(3):
                assert_unavailable(create())
            assert_unavailable(http.patch(f"/tasks/{acknowledged[0]}", json={"done": True},
                                          headers=bearer))  # fmt: skip
            assert_unavailable(http.post("/auth/login", json=account))

            private_postgres.start()
            took, seen = until_recovered(create, ok=201)
            print(f"command API recovered {took:.1f} s after PostgreSQL came back: {seen}")
            # Recovered for good: no lingering dead connections answering 503.
            for _ in range(30):
                assert create().status_code == 201
            done = http.patch(f"/tasks/{acknowledged[0]}", json={"done": True}, headers=bearer)
            assert done.status_code == 200
    finally:
        store.close()

    with_fresh_store = TodoStore(env=store_env(db))
    try:
        user = with_fresh_store.find_user_by_email("outage@example.com")
        assert user is not None
        for task_id in acknowledged:
            assert with_fresh_store.get_task(user.id, UUID(task_id)).title == "t"
    finally:
        with_fresh_store.close()


def test_the_query_api_answers_503_while_postgres_is_down_and_recovers(
    private_postgres: PrivatePostgres,
) -> None:
    db = private_postgres.settings
    migrate(db)
    token, _ = issue_token(uuid4(), auth_settings())
    bearer = {"Authorization": f"Bearer {token}"}
    app = create_query_app(settings=QueryApiSettings(), db=db)
    with serving(app) as base_url, httpx.Client(base_url=base_url, timeout=60) as http:
        assert http.get("/tasks", headers=bearer).status_code == 200
        private_postgres.stop()
        for _ in range(3):
            assert_unavailable(http.get("/tasks", headers=bearer))
        assert http.get("/ready").status_code == 503
        private_postgres.start()
        took, seen = until_recovered(lambda: http.get("/tasks", headers=bearer), ok=200)
        print(f"query API recovered {took:.1f} s after PostgreSQL came back: {seen}")
        for _ in range(30):
            assert http.get("/tasks", headers=bearer).status_code == 200
        assert http.get("/ready").status_code == 200
