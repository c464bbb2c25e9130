"""Service processes (`python -m ...`) a test or a benchmark starts itself and stops on the way
out, whatever happened in between."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from runtime.settings import DatabaseSettings, KafkaSettings
from tests.support.infra import process_env
from tests.support.smtp import SmtpServer

ROOT = Path(__file__).parents[2]


@contextmanager
def python_process(
    args: Sequence[str], env: dict[str, str], **popen: Any
) -> Iterator[subprocess.Popen[Any]]:
    """`python <args>` from the checkout's root; on the way out, if it still runs, SIGTERM and a
    wait of up to 30 s (a process that does not stop fails the test)."""
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, **popen)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)


def relay_process(
    db: DatabaseSettings, kafka: KafkaSettings, popen: dict[str, Any] | None = None, **env: str
) -> AbstractContextManager[subprocess.Popen[Any]]:
    """`python -m event_store relay` on this test's database and topics, polling every 0.2 s
    unless `env` says otherwise; `popen`: extra subprocess.Popen arguments (e.g. its stderr)."""
    environment = process_env(db, kafka, **{"RELAY_POLL_INTERVAL_SECONDS": "0.2", **env})
    return python_process(["-m", "event_store", "relay"], environment, **(popen or {}))


def stop_process(proc: subprocess.Popen[Any], timeout: float) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` s; its pipes are drained
    meanwhile (communicate), so a process blocked on a full one cannot hang the stop."""
    proc.terminate()
    try:
        proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()


def worker_env(smtp: SmtpServer, **extra: str) -> dict[str, str]:
    """Settings of the worker processes in a test that kills or restarts them: mail goes to the
    test's SMTP sink and a failed delivery is retried quickly; the relay polls every 0.2 s."""
    return {
        "SMTP_HOST": smtp.host,
        "SMTP_PORT": str(smtp.port),
        "MAILER_RETRY_INITIAL_SECONDS": "0.05",
        "MAILER_RETRY_MAX_SECONDS": "1",
        "RELAY_POLL_INTERVAL_SECONDS": "0.2",
        **extra,
    }
