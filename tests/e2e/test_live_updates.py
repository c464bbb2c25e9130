"""Two tabs of the same user stay in step without reloading: each change made in one appears in
the other within seconds, pushed by GET /api/stream through the real gateway."""

from __future__ import annotations

import uuid

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.test_browser_journey import add_task, row_titled
from tests.support.e2e_system import System

pytestmark = pytest.mark.e2e
PUSHED_WITHIN_MS = 5_000  # the push itself takes milliseconds; the rest is a loaded CI machine


def log_in(page: Page, email: str, password: str) -> None:
    page.goto("/")
    page.locator("#email").fill(email)
    page.locator("#password").fill(password)
    page.locator("#auth-submit").click()
    expect(page.locator("#tasks-view")).to_be_visible()


def test_a_change_in_one_tab_appears_in_the_other_without_a_reload(
    page: Page, system: System
) -> None:
    email = f"live-{uuid.uuid4().hex[:10]}@example.com"
    password = "correct horse battery"
    with httpx.Client(base_url=system.gateway_url, timeout=10) as http:
        registered = http.post("/api/auth/register", json={"email": email, "password": password})
        assert registered.status_code == 201, registered.text
    log_in(page, email, password)
    other = page.context.new_page()  # same browser profile: the second tab is signed in too
    other.goto("/")
    expect(other.locator("#tasks-view")).to_be_visible()
    expect(other.locator("#list-empty")).to_be_visible()
    reloads: list[str] = []
    other.on("framenavigated", lambda frame: reloads.append(frame.url))

    add_task(page, "Written in tab one")
    pushed = row_titled(other, "Written in tab one")
    expect(pushed).to_have_count(1, timeout=PUSHED_WITHIN_MS)
    expect(other.locator("#stat-total")).to_have_text("1", timeout=PUSHED_WITHIN_MS)

    pushed.get_by_test_id("task-toggle").check()
    mine = row_titled(page, "Written in tab one")
    expect(mine).to_have_attribute("data-done", "true", timeout=PUSHED_WITHIN_MS)

    mine.get_by_test_id("task-delete").click()
    expect(row_titled(other, "Written in tab one")).to_have_count(0, timeout=PUSHED_WITHIN_MS)
    assert reloads == [], "the other tab never reloaded"
    other.close()
