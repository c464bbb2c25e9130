"""The whole system, started exactly as `make run` starts it (infra/run.sh: migrations, then every
Procfile service under honcho, behind the nginx gateway), once per test session.

It runs beside a developer's own `make run` and other tests without touching them: its own ports
(free ones, picked at start), its own database and Kafka topics (created here, removed after),
its own consumer groups, relay name and nginx directory. PostgreSQL and Kafka must already be
running (`make test` starts them); infra/run.sh then leaves them alone.

The system's output goes to test-artifacts/e2e/system.log; its tail is attached to every failing
e2e test. Screenshots and, on failure, Playwright traces also land in test-artifacts/e2e/. How the
system is started, probed and stopped: tests/support/e2e_system.py.
"""

from __future__ import annotations

import re
import shutil
import warnings
from collections.abc import Generator, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support.browser import ensure_chromium, launch_chromium
from tests.support.e2e_system import (
    ARTIFACTS,
    LOG_TAIL_LINES,
    RunningSystem,
    StartError,
    System,
    ensure_nginx,
    free_ports,
    group_members,
    listening,
    log_tail,
    system_env,
)
from tests.support.infra import fresh_database, fresh_topics

LOG_KEY = pytest.StashKey[Path]()
REPORTS_KEY = pytest.StashKey[dict[str, pytest.TestReport]]()


# ---- the system -------------------------------------------------------------------------------


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
    ensure_nginx()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log_path = ARTIFACTS / "system.log"
    nginx_data = ARTIFACTS / "nginx"
    for old in (nginx_data, ARTIFACTS / "mail"):
        shutil.rmtree(old, ignore_errors=True)
    for pattern in ("FAILED-*.png", "trace-*.zip"):
        for stale in ARTIFACTS.glob(pattern):
            stale.unlink()
    names = ["command_api", "query_api", "gateway", "smtp", "smtp_web"]
    ports = dict(zip(names, free_ports(len(names)), strict=True))

    with ExitStack() as stack:
        db = stack.enter_context(fresh_database())
        kafka = stack.enter_context(fresh_topics())
        env = system_env(ports, db.POSTGRES_DB, kafka, nginx_data)
        request.config.stash[LOG_KEY] = log_path
        info = System(ports, log_path, nginx_data, db.POSTGRES_DB, kafka.KAFKA_TOPIC)
        running = _start(env, info)
        try:
            yield info
        finally:
            running.stop()
        still = {name: port for name, port in ports.items() if listening(port)}
        assert not still, f"ports still listening after the system stopped: {still}"
        assert not group_members(running.pgid), "processes of the system are still alive"


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
