"""Debian's Chromium for the end-to-end test, driven by Playwright (never Playwright's download)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright

ROOT = Path(__file__).parents[2]
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
INSTALL_TIMEOUT_SECONDS = 900

# Headless, and nothing that phones home or waits for a network we do not have.
LAUNCH_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def _is_executable(path: str) -> bool:
    return os.path.isfile(path) and os.access(path, os.X_OK)


def ensure_chromium() -> str:
    """The browser's path, installing Debian's package first when it is missing
    (infra/browser.sh). Skips the calling test, saying why, only when it cannot be installed;
    every other problem (e.g. the browser failing to start) is a failure."""
    if _is_executable(CHROMIUM):
        return CHROMIUM
    try:
        done = subprocess.run(
            [str(ROOT / "infra" / "browser.sh"), "install"],
            env={**os.environ, "CHROMIUM": CHROMIUM},
            capture_output=True,
            text=True,
            timeout=INSTALL_TIMEOUT_SECONDS,
            check=False,
        )
        output = (done.stdout + done.stderr).strip()
    except (OSError, subprocess.TimeoutExpired) as e:
        output = str(e)
    if not _is_executable(CHROMIUM):
        tail = "\n".join(output.splitlines()[-15:])
        pytest.skip(
            f"{CHROMIUM} is missing and could not be installed by infra/browser.sh "
            f"(Debian's chromium package), so the browser test cannot run:\n{tail}"
        )
    return CHROMIUM


def launch_chromium(playwright: Playwright, executable: str) -> Browser:
    return playwright.chromium.launch(
        executable_path=executable, headless=True, args=list(LAUNCH_ARGS)
    )
