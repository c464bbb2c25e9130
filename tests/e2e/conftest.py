"""The whole system, started exactly as `make run` starts it (infra/run.sh: migrations, then every
Procfile service under honcho, behind the nginx gateway), once per test session.

It runs beside a developer's own `make run` and other tests without touching them: its own ports
(free ones, picked at start), its own database and Kafka topics (created here, removed after),
its own consumer groups, relay name and nginx directory. PostgreSQL and Kafka must already be
running (`make test` starts them); infra/run.sh then leaves them alone.

The system's output goes to test-artifacts/e2e/system.log; its tail is attached to every failing
e2e test. Screenshots and, on failure, Playwright traces also land in test-artifacts/e2e/.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
import warnings
from collections.abc import Generator, Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from runtime.settings import KafkaSettings
from tests.support.browser import ensure_chromium, launch_chromium
from tests.support.infra import fresh_database, fresh_topics

ROOT = Path(__file__).parents[2]
ARTIFACTS = ROOT / "test-artifacts" / "e2e"
START_TIMEOUT_SECONDS = 180.0
STOP_TIMEOUT_SECONDS = 30.0
LOG_TAIL_LINES = 200

LOG_KEY = pytest.StashKey[Path]()
REPORTS_KEY = pytest.StashKey[dict[str, pytest.TestReport]]()


@dataclass(frozen=True)
class System:
    """Addresses of one running system (all on 127.0.0.1)."""

    ports: dict[str, int]
    log_path: Path
    nginx_data: Path
    database: str
    topic: str

    def upstream(self, service: str) -> str:
        """host:port of a service (a key of `ports`), as nginx's access log names its upstream."""
        return f"127.0.0.1:{self.ports[service]}"

    def url(self, service: str) -> str:
        return f"http://{self.upstream(service)}"

    @property
    def gateway_url(self) -> str:
        return self.url("gateway")

    @property
    def access_log(self) -> Path:
        return self.nginx_data / "access.log"


# ---- helpers ----------------------------------------------------------------------------------


def log_tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        return f"(no log: {e})"
    return "\n".join(text.splitlines()[-lines:])


def _free_ports(count: int) -> list[int]:
    """Ports free right now (bound together, so they are distinct)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _group_members(pgid: int) -> list[str]:
    """Live (non-zombie) processes of a process group, as 'pid command' strings."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        # Fields after the parenthesised command: state ppid pgrp ...
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(f"{entry.name} {cmdline or stat[: stat.rfind(')') + 1]}")
    return members


def _answers(client: httpx.Client, url: str) -> bool:
    try:
        return client.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _ensure_nginx() -> None:
    if shutil.which("nginx") or os.access("/usr/sbin/nginx", os.X_OK):
        return
    subprocess.run([str(ROOT / "infra" / "nginx.sh"), "install"], check=True, timeout=900)


def _smtp_sink_env(ports: dict[str, int]) -> dict[str, str]:
    """The SMTP sink (infra/smtp-sink.sh) on ports of its own, and the mailer sending to it."""
    return {
        "SMTP_SINK_HOST": "127.0.0.1",
        "SMTP_SINK_PORT": str(ports["smtp"]),
        "SMTP_SINK_WEB_PORT": str(ports["smtp_web"]),
        "SMTP_SINK_MAIL_DIR": str(ARTIFACTS / "mail"),
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(ports["smtp"]),
    }


# ---- the system -------------------------------------------------------------------------------


class StartError(Exception):
    """The system did not become ready."""


class RunningSystem:
    """infra/run.sh in its own process group (its own session), output to a log file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.process = subprocess.Popen(
            [str(ROOT / "infra" / "run.sh")],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pgid = self.process.pid  # new session: the leader's pid is the group id
        self.forced = False

    def fail(self, message: str) -> NoReturn:
        self._log.flush()
        raise StartError(message)

    def wait_until_ready(self, system: System) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        probes = {
            "gateway": f"{system.gateway_url}/gateway-health",
            "command API": f"{system.url('command_api')}/ready",
            "query API": f"{system.url('query_api')}/ready",
        }
        pending = dict(probes)
        with httpx.Client() as client:
            while pending:
                if self.process.poll() is not None:
                    self.fail(f"infra/run.sh exited early (code {self.process.returncode})")
                if time.monotonic() > deadline:
                    self.fail(
                        f"not ready within {START_TIMEOUT_SECONDS:.0f} s: "
                        + ", ".join(f"{name} ({url})" for name, url in pending.items())
                    )
                pending = {n: u for n, u in pending.items() if not _answers(client, u)}
                if pending:
                    time.sleep(0.5)
            self._wait_for_the_pipeline(client, system, deadline)

    def _wait_for_the_pipeline(self, client: httpx.Client, system: System, deadline: float) -> None:
        """A first write must travel command API -> store -> relay -> Kafka -> projector -> query
        API before the tests start, so that they never depend on how long consumers take to join
        their groups on fresh topics. Uses a user of its own, through the gateway."""
        api = f"{system.gateway_url}/api"
        email = f"warmup-{uuid.uuid4().hex[:10]}@example.com"
        credentials = {"email": email, "password": "warm-up password"}
        try:
            client.post(f"{api}/auth/register", json=credentials, timeout=30).raise_for_status()
            login = client.post(f"{api}/auth/login", json=credentials, timeout=30)
            login.raise_for_status()
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            created = client.post(
                f"{api}/tasks", json={"title": "warm-up"}, headers=headers, timeout=30
            )
            created.raise_for_status()
        except httpx.HTTPError as e:
            self.fail(f"the warm-up write through the gateway failed: {e!r}")
        headers["X-Min-Position"] = created.headers["X-Event-Position"]
        last = "no answer"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.fail(f"infra/run.sh exited early (code {self.process.returncode})")
            try:
                me = client.get(f"{api}/me", headers=headers, timeout=30)
                last = f"{me.status_code} X-Stale={me.headers.get('X-Stale')} {me.text[:200]}"
                if (
                    me.status_code == 200
                    and me.headers.get("X-Stale", "").lower() != "true"
                    and me.json().get("stats", {}).get("total") == 1
                ):
                    return
            except httpx.HTTPError as e:
                last = repr(e)
            time.sleep(0.5)
        self.fail(
            "the warm-up task never reached the query side (relay -> Kafka -> projector); "
            f"last GET /api/me: {last}"
        )

    def stop(self) -> None:
        """SIGINT to the whole group (what Ctrl-C does), then SIGKILL whatever is left."""
        with suppress(ProcessLookupError):
            os.killpg(self.pgid, signal.SIGINT)
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        while time.monotonic() < deadline and (
            self.process.poll() is None or _group_members(self.pgid)
        ):
            time.sleep(0.2)
        left = _group_members(self.pgid)
        if self.process.poll() is None or left:
            self.forced = True
            with suppress(ProcessLookupError):
                os.killpg(self.pgid, signal.SIGKILL)
            warnings.warn(
                f"the system did not stop within {STOP_TIMEOUT_SECONDS:.0f} s of SIGINT; "
                f"killed: {left}",
                stacklevel=1,
            )
        self.process.wait(timeout=10)
        self._log.close()


def _system_env(
    ports: dict[str, int], db: str, kafka: KafkaSettings, nginx_data: Path
) -> dict[str, str]:
    suffix = uuid.uuid4().hex[:8]
    return {
        **os.environ,
        "PYTHONUNBUFFERED": "1",
        "POSTGRES_DB": db,
        "KAFKA_TOPIC": kafka.KAFKA_TOPIC,
        "KAFKA_DLQ_TOPIC": kafka.KAFKA_DLQ_TOPIC,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.KAFKA_BOOTSTRAP_SERVERS,
        "COMMAND_API_HOST": "127.0.0.1",
        "COMMAND_API_PORT": str(ports["command_api"]),
        "QUERY_API_HOST": "127.0.0.1",
        "QUERY_API_PORT": str(ports["query_api"]),
        "GATEWAY_PORT": str(ports["gateway"]),
        "COMMAND_API_UPSTREAM": f"127.0.0.1:{ports['command_api']}",
        "QUERY_API_UPSTREAM": f"127.0.0.1:{ports['query_api']}",
        "NGINX_DATA": str(nginx_data),
        "RELAY_NAME": f"e2e-relay-{suffix}",
        "PROJECTOR_GROUP_ID": f"e2e-projector-{suffix}",
        "MAILER_GROUP_ID": f"e2e-mailer-{suffix}",
        "MAILER_APP_URL": f"http://127.0.0.1:{ports['gateway']}/",
        # Workers' health endpoints off: the default ports may belong to a developer's make run.
        **{f"{w}_HEALTH_PORT": "0" for w in ("RELAY", "PROJECTOR", "SCHEDULER", "MAILER")},
        **_smtp_sink_env(ports),
    }


def _start(env: dict[str, str], info: System) -> RunningSystem:
    running = RunningSystem(env, info.log_path)
    try:
        running.wait_until_ready(info)
    except StartError as e:
        running.stop()
        pytest.fail(f"{e}; the system's output is in {info.log_path}", pytrace=False)
    return running


@pytest.fixture(scope="session")
def system(request: pytest.FixtureRequest) -> Iterator[System]:
    """The whole system as `make run` starts it, on ports of its own; stopped like Ctrl-C."""
    _ensure_nginx()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log_path = ARTIFACTS / "system.log"
    nginx_data = ARTIFACTS / "nginx"
    for old in (nginx_data, ARTIFACTS / "mail"):
        shutil.rmtree(old, ignore_errors=True)
    for pattern in ("FAILED-*.png", "trace-*.zip"):
        for stale in ARTIFACTS.glob(pattern):
            stale.unlink()
    names = ["command_api", "query_api", "gateway", "smtp", "smtp_web"]
    ports = dict(zip(names, _free_ports(len(names)), strict=True))

    with ExitStack() as stack:
        db = stack.enter_context(fresh_database())
        kafka = stack.enter_context(fresh_topics())
        env = _system_env(ports, db.POSTGRES_DB, kafka, nginx_data)
        request.config.stash[LOG_KEY] = log_path
        info = System(ports, log_path, nginx_data, db.POSTGRES_DB, kafka.KAFKA_TOPIC)
        running = _start(env, info)
        try:
            yield info
        finally:
            running.stop()
        still = {name: port for name, port in ports.items() if _listening(port)}
        assert not still, f"ports still listening after the system stopped: {still}"
        assert not _group_members(running.pgid), "processes of the system are still alive"


# ---- failure reports --------------------------------------------------------------------------


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    item.stash.setdefault(REPORTS_KEY, {})[report.when] = report
    log = item.config.stash.get(LOG_KEY, None)
    if report.failed and log is not None:
        report.sections.append((f"system log {log} (last {LOG_TAIL_LINES} lines)", log_tail(log)))
    return report


def _failed(request: pytest.FixtureRequest) -> bool:
    reports = request.node.stash.get(REPORTS_KEY, {})
    return any(r.failed for r in reports.values())


# ---- the browser ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Module-scoped, not session-scoped: Playwright's sync API keeps an asyncio loop running in
    this thread while it is open, and later tests calling asyncio.run() would fail."""
    executable = ensure_chromium()
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright, executable)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser, system: System, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser context on the gateway; on failure, a screenshot and a Playwright trace
    (open with `.venv/bin/playwright show-trace <zip>`) go to test-artifacts/e2e/."""
    expect.set_options(timeout=15_000)
    context = browser.new_context(
        base_url=system.gateway_url, viewport={"width": 1280, "height": 800}
    )
    context.set_default_timeout(15_000)
    context.tracing.start(screenshots=True, snapshots=True)
    page = context.new_page()
    try:
        yield page
    finally:
        name = re.sub(r"[^\w.-]+", "_", request.node.name)
        if _failed(request):
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            try:
                page.screenshot(path=ARTIFACTS / f"FAILED-{name}.png", full_page=True)
            except Exception as e:  # the page may be gone; the trace still helps
                warnings.warn(f"no failure screenshot: {e}", stacklevel=1)
            context.tracing.stop(path=ARTIFACTS / f"trace-{name}.zip")
        else:
            context.tracing.stop()
        context.close()
