"""The system's processes, for real (`python -m ...`), as tests that kill and restart them need
them: each one's stderr (JSON log lines) is appended to a file, so nothing blocks on a full pipe
and every incarnation's log survives its SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from runtime.settings import DatabaseSettings, KafkaSettings
from tests.support.infra import process_env

ROOT = Path(__file__).parents[2]

COMMANDS: dict[str, list[str]] = {
    "relay": ["-m", "event_store", "relay"],
    "projector": ["-m", "projector", "consume"],
    "mailer": ["-m", "mailer"],
    "command_api": ["-m", "command_api"],
    "query_api": ["-m", "query_api"],
    "scheduler": ["-m", "scheduler"],
}


@dataclass
class Service:
    """One long-running process of the system; `kill` is a SIGKILL, `start` a new incarnation."""

    name: str
    args: Sequence[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    kills: int = 0
    starts: int = 0
    exits: list[int] = field(default_factory=list)  # return codes of incarnations that ended

    def start(self) -> None:
        assert not self.alive, f"{self.name} is already running"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, *self.args],
                cwd=ROOT,
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        self.starts += 1

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL: no clean-up, no flush, no goodbye (a crash, an OOM kill, a pulled plug)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        self.kills += 1

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM (a graceful stop), then SIGKILL if it does not exit in time."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.exits.append(self.process.returncode)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def service(
    name: str,
    db: DatabaseSettings,
    kafka: KafkaSettings,
    log_dir: Path,
    **env: str,
) -> Service:
    values = process_env(db, kafka, **{"ENVIRONMENT": "test", "LOG_LEVEL": "INFO", **env})
    values["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
    )
    return Service(name, COMMANDS[name], values, log_dir / f"{name}.log")


@contextmanager
def running(*services: Service) -> Iterator[tuple[Service, ...]]:
    """Start them all; stop (SIGTERM) every one still running on the way out."""
    with ExitStack() as stack:
        for s in services:
            s.start()
            stack.callback(s.stop)
        yield services


def wait_for_http(url: str, timeout: float = 60.0) -> None:
    """Until `url` answers 200 (a process's /ready or /health)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{url} did not answer 200 within {timeout}s")
        time.sleep(0.1)
