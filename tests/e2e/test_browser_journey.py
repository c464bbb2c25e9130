"""A user's whole journey in a real browser (Chromium), through the real gateway, against the
whole running system: register (and land logged in), settings, add, complete, rename, delete,
undo (the same task comes back), its history and the activity, reload, log out, log in.

Only Playwright's auto-waiting assertions (expect) wait; there are no fixed sleeps. Screenshots of
each major step go to test-artifacts/e2e/journey/.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from playwright.sync_api import ConsoleMessage, Locator, Page, expect

from tests.support.e2e_system import ARTIFACTS, System

pytestmark = pytest.mark.e2e

SHOTS = ARTIFACTS / "journey"


class Steps:
    """Numbered screenshots of the journey (old ones are removed first)."""

    def __init__(self, page: Page, folder: Path) -> None:
        self.page = page
        self.folder = folder
        self.count = 0
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.png"):
            old.unlink()

    def shot(self, name: str) -> None:
        self.count += 1
        self.page.screenshot(path=self.folder / f"{self.count:02d}-{name}.png", full_page=True)


def rows(page: Page) -> Locator:
    return page.locator("#task-list [data-testid=task-item]")


def row_titled(page: Page, title: str) -> Locator:
    return rows(page).filter(has=page.get_by_test_id("task-title").get_by_text(title, exact=True))


def row_with_id(page: Page, task_id: str) -> Locator:
    return page.locator(f'#task-list [data-testid=task-item][data-task-id="{task_id}"]')


def expect_stats(page: Page, *, total: int, done: int, undone: int) -> None:
    expect(page.locator("#stat-total")).to_have_text(str(total))
    expect(page.locator("#stat-done")).to_have_text(str(done))
    expect(page.locator("#stat-undone")).to_have_text(str(undone))


def add_task(page: Page, title: str) -> None:
    page.locator("#new-task-title").fill(title)
    page.locator("#add-task").click()
    expect(row_titled(page, title)).to_have_count(1)
    expect(page.locator("#new-task-title")).to_have_value("")


def test_a_user_registers_logs_in_manages_tasks_reloads_and_logs_out_in_a_real_browser(
    page: Page, system: System
) -> None:
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"uncaught: {e}"))

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"console: {message.text} ({message.location})")

    page.on("console", on_console)
    steps = Steps(page, SHOTS)
    email = f"e2e-{uuid.uuid4().hex[:10]}@example.com"
    password = "correct horse battery"

    # The SPA opens on the login form.
    page.goto("/")
    expect(page.locator("#auth-view")).to_be_visible()
    expect(page.locator("#login-form")).to_be_visible()
    expect(page.locator("#tasks-view")).to_be_hidden()
    steps.shot("login-form")

    # Register: the new account lands logged in on the (empty) task screen, its email from the
    # query side.
    page.locator("#mode-register").click()
    expect(page.locator("#register-form")).to_be_visible()
    expect(page.locator("#auth-submit")).to_have_text("Create account")
    page.locator("#email").fill(email)
    page.locator("#password").fill(password)
    steps.shot("register-form-filled")
    page.locator("#auth-submit").click()
    expect(page.locator("#tasks-view")).to_be_visible()
    expect(page.locator("#auth-view")).to_be_hidden()
    expect(page.locator("#user-email")).to_have_text(email)
    expect(page.locator("#list-empty")).to_be_visible()
    expect_stats(page, total=0, done=0, undone=0)
    steps.shot("registered-and-logged-in")

    # Settings: the timezone starts as the browser's; choosing another one is saved (and read
    # back from the query side after a reload).
    browser_zone = page.evaluate("() => Intl.DateTimeFormat().resolvedOptions().timeZone")
    page.locator("#settings-open").click()
    expect(page.locator("#settings-view")).to_be_visible()
    expect(page.locator("#settings-timezone")).to_have_value(browser_zone)
    expect(page.locator("#settings-digest")).to_be_checked()
    page.locator("#settings-timezone").select_option("Europe/Paris")
    page.locator("#settings-save").click()
    expect(page.locator("#settings-status")).to_have_text("Settings saved.")
    steps.shot("settings-saved")
    page.reload()
    page.locator("#settings-open").click()
    expect(page.locator("#settings-timezone")).to_have_value("Europe/Paris")
    page.locator("#settings-close").click()
    expect(page.locator("#settings-view")).to_be_hidden()

    # Add two tasks: newest first.
    add_task(page, "Buy milk")
    add_task(page, "Write report")
    expect(rows(page).get_by_test_id("task-title")).to_have_text(["Write report", "Buy milk"])
    expect(page.locator("#list-empty")).to_be_hidden()
    expect_stats(page, total=2, done=0, undone=2)
    steps.shot("two-tasks-added")

    # Complete one.
    milk_id = row_titled(page, "Buy milk").get_attribute("data-task-id")
    assert milk_id
    milk = row_with_id(page, milk_id)
    milk.get_by_test_id("task-toggle").check()
    expect(milk).to_have_attribute("data-done", "true")
    expect(milk.get_by_test_id("task-toggle")).to_be_checked()
    expect_stats(page, total=2, done=1, undone=1)
    steps.shot("one-completed")

    # Rename it (Edit, type, Enter).
    milk.get_by_test_id("task-edit").click()
    title_input = milk.get_by_test_id("task-title-input")
    expect(title_input).to_be_focused()
    title_input.fill("Buy oat milk")
    title_input.press("Enter")
    expect(milk.get_by_test_id("task-title")).to_have_text("Buy oat milk")
    expect(title_input).to_have_count(0)
    expect(milk).to_have_attribute("data-version", "3")
    expect(milk).to_have_attribute("data-done", "true")
    steps.shot("one-renamed")

    # Delete the other one: gone at once, with an Undo toast.
    report_id = row_titled(page, "Write report").get_attribute("data-task-id")
    assert report_id
    row_titled(page, "Write report").get_by_test_id("task-delete").click()
    expect(row_titled(page, "Write report")).to_have_count(0)
    expect(page.locator("#toast")).to_be_visible()
    expect(page.locator("#toast-message")).to_have_text("Deleted “Write report”")
    expect(page.locator("#toast-undo")).to_be_visible()
    expect(rows(page)).to_have_count(1)
    expect_stats(page, total=1, done=1, undone=0)
    steps.shot("one-deleted")

    # Undo: the same task comes back (same id), restored, not re-created.
    page.locator("#toast-undo").click()
    report = row_with_id(page, report_id)
    expect(report).to_have_count(1)
    expect(report.get_by_test_id("task-title")).to_have_text("Write report")
    expect(report).to_have_attribute("data-version", "3")
    expect(page.locator("#toast")).to_be_hidden()
    expect_stats(page, total=2, done=1, undone=1)
    steps.shot("deletion-undone")

    # Its history: created, deleted, restored, oldest first.
    report.get_by_test_id("task-history").click()
    expect(page.locator("#history-panel")).to_be_visible()
    expect(page.locator("#history-title")).to_have_text("History of “Write report”")
    history_items = page.locator("#history-list [data-testid=history-item]")
    expect(history_items.locator(".event-what")).to_have_text(
        ["Created “Write report”", "Deleted", "Restored"]
    )
    assert history_items.evaluate_all("items => items.map(i => i.dataset.type)") == [
        "task.created",
        "task.deleted",
        "task.restored",
    ]
    steps.shot("task-history")
    page.keyboard.press("Escape")
    expect(page.locator("#history-panel")).to_be_hidden()

    # The activity: every change of the user's tasks, newest first.
    page.locator("#activity-toggle").click()
    expect(page.locator("#activity-view")).to_be_visible()
    expect(page.locator("#activity-list .event-what")).to_have_text(
        [
            "Restored “Write report”",
            "Deleted “Write report”",
            "Renamed to “Buy oat milk”",
            "Completed “Buy oat milk”",
            "Created “Write report”",
            "Created “Buy milk”",
        ]
    )
    steps.shot("activity")
    page.locator("#activity-toggle").click()
    expect(page.locator("#activity-view")).to_be_hidden()

    # Reload: still logged in; the list and counts come back from the query side.
    page.reload()
    expect(page.locator("#tasks-view")).to_be_visible()
    expect(page.locator("#toast")).to_be_hidden()
    expect(page.locator("#user-email")).to_have_text(email)
    expect(rows(page)).to_have_count(2)
    expect(rows(page).get_by_test_id("task-title")).to_have_text(["Write report", "Buy oat milk"])
    expect(row_with_id(page, milk_id)).to_have_attribute("data-done", "true")
    expect(row_with_id(page, milk_id).get_by_test_id("task-toggle")).to_be_checked()
    expect_stats(page, total=2, done=1, undone=1)
    expect(page.locator("#sync-note")).to_be_hidden()
    steps.shot("after-reload")

    # Log out: back on the login form, and the session is gone (a reload stays logged out).
    page.locator("#logout").click()
    expect(page.locator("#auth-view")).to_be_visible()
    expect(page.locator("#login-form")).to_be_visible()
    expect(page.locator("#tasks-view")).to_be_hidden()
    expect(page.locator("#user-box")).to_be_hidden()
    expect(page.locator("#auth-message")).to_contain_text("logged out")
    steps.shot("logged-out")
    assert page.evaluate("() => window.localStorage.getItem('todo.token')") is None
    page.reload()
    expect(page.locator("#login-form")).to_be_visible()
    expect(page.locator("#tasks-view")).to_be_hidden()

    # Log in again: the same account and its tasks.
    page.locator("#email").fill(email)
    page.locator("#password").fill(password)
    page.locator("#auth-submit").click()
    expect(page.locator("#tasks-view")).to_be_visible()
    expect(rows(page).get_by_test_id("task-title")).to_have_text(["Write report", "Buy oat milk"])

    assert not problems, "the browser reported errors:\n" + "\n".join(problems)
