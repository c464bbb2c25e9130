"""What the benchmarks that start real processes share: the rounds a figure is the median of, a
scratch database at the current schema, the environment of a service process, and a service that
must answer before the load begins."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from psycopg import sql

from runtime.settings import DatabaseSettings
from tests.support.processes import stop_process
from tests.support.read_side import migrate

ROOT = Path(__file__).parents[1]


def add_round_arguments(parser: argparse.ArgumentParser, *, seconds: float, per: str) -> None:
    """`--rounds` (3 by default: a figure is the median of at least three rounds) and `--seconds`
    (how long the load of one round, or of what `per` names, lasts)."""
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=seconds, help=f"load per {per}")


def scratch_database(name: str, *, recreate: bool) -> DatabaseSettings:
    """The database `name`, created if missing (dropped first with `recreate`), migrated."""
    admin = DatabaseSettings().model_copy(update={"POSTGRES_DB": "postgres"})
    with psycopg.connect(admin.conninfo, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists and recreate:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        if not exists or recreate:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    db = DatabaseSettings().model_copy(update={"POSTGRES_DB": name})
    migrate(db)
    return db


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service_env(db: DatabaseSettings, **extra: str) -> dict[str, str]:
    """A service process's environment: this shell's, on `db`, quiet, with cheap password hashes
    (a benchmark registers its users; bcrypt at production cost would only slow the set-up)."""
    return {
        **os.environ,
        "POSTGRES_DB": db.POSTGRES_DB,
        "LOG_LEVEL": "WARNING",
        "BCRYPT_ROUNDS": "4",
        **extra,
    }


def wait_ready(url: str, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"{what} did not become ready at {url}") from None
            time.sleep(0.1)


@contextmanager
def service(
    what: str, cmd: list[str], env: dict[str, str], ready_url: str, cwd: Path = ROOT
) -> Iterator[subprocess.Popen[bytes]]:
    """`cmd` running until the block ends, from the block's start on answering `ready_url`."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=env)
    try:
        wait_ready(ready_url, proc, what)
        yield proc
    finally:
        stop_process(proc, timeout=15)
