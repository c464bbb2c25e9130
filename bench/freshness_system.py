"""The freshness benchmark's system under test: the four processes of the freshness path started
as `make run` starts them (own ports, database, Kafka topics, users), their CPU time from /proc,
and the per-hop histograms they expose. Used by bench/bench_freshness.py."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from common.settings import DatabaseSettings, KafkaSettings

ROOT = Path(__file__).parents[1]
LOADGEN = ROOT / ".data" / "go" / "bin" / "loadgen"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# --- infrastructure ----------------------------------------------------------------------------


def fresh_database(name: str) -> DatabaseSettings:
    admin = DatabaseSettings().model_copy(update={"POSTGRES_DB": "postgres"})
    with psycopg.connect(admin.conninfo, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    db = DatabaseSettings().model_copy(update={"POSTGRES_DB": name})
    from tests.support.read_side import migrate

    migrate(db)
    return db


@contextmanager
def bench_topics() -> Iterator[KafkaSettings]:
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.cimpl import NewTopic

    suffix = uuid.uuid4().hex[:8]
    kafka = KafkaSettings().model_copy(
        update={
            "KAFKA_TOPIC": f"bench-fresh-{suffix}",
            "KAFKA_DLQ_TOPIC": f"bench-fresh-{suffix}.dlq",
        }
    )
    admin = AdminClient({"bootstrap.servers": kafka.KAFKA_BOOTSTRAP_SERVERS})
    names = [kafka.KAFKA_TOPIC, kafka.KAFKA_DLQ_TOPIC]
    for f in admin.create_topics([NewTopic(n, 3, 1) for n in names]).values():
        f.result(timeout=20)
    try:
        yield kafka
    finally:
        for f in admin.delete_topics(names).values():
            try:
                f.result(timeout=20)
            except Exception as e:
                print(f"could not delete a bench topic: {e}", file=sys.stderr)


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
def service(name: str, args: list[str], env: dict[str, str], ready_url: str) -> Iterator[int]:
    proc = subprocess.Popen([sys.executable, "-m", *args], cwd=env["PYTHONPATH"], env=env)
    try:
        wait_ready(ready_url, proc, name)
        yield proc.pid
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@dataclass(frozen=True)
class Ports:
    command: int
    query: int
    relay: int
    projector: int

    @classmethod
    def from_base(cls, base: int) -> Ports:
        return cls(base + 1, base + 2, base + 11, base + 12)


def start_system(
    stack: ExitStack, db: DatabaseSettings, kafka: KafkaSettings, ports: Ports, app_root: Path
) -> dict[str, int]:
    """The four processes of the freshness path, as `make run` starts them, from the checkout at
    `app_root`; name -> pid."""
    env = {
        **os.environ,
        "PYTHONPATH": str(app_root),
        "POSTGRES_DB": db.POSTGRES_DB,
        "KAFKA_TOPIC": kafka.KAFKA_TOPIC,
        "KAFKA_DLQ_TOPIC": kafka.KAFKA_DLQ_TOPIC,
        "PROJECTOR_GROUP_ID": f"bench-projector-{uuid.uuid4().hex[:6]}",
        "COMMAND_API_PORT": str(ports.command),
        "QUERY_API_PORT": str(ports.query),
        "RELAY_HEALTH_PORT": str(ports.relay),
        "PROJECTOR_HEALTH_PORT": str(ports.projector),
        "LOG_LEVEL": "WARNING",
        "BCRYPT_ROUNDS": "4",
    }
    local = "http://127.0.0.1:{}/health"
    return {
        "command API": stack.enter_context(
            service("command API", ["command_api"], env, local.format(ports.command))
        ),
        "query API": stack.enter_context(
            service("query API", ["query_api"], env, local.format(ports.query))
        ),
        "relay": stack.enter_context(
            service("relay", ["event_store", "relay"], env, local.format(ports.relay))
        ),
        "projector": stack.enter_context(
            service("projector", ["projector", "consume"], env, local.format(ports.projector))
        ),
    }


def post_json(url: str, body: dict[str, str]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        answer: dict[str, Any] = json.load(response)
        return answer


def user_tokens(command_url: str, users: int) -> list[str]:
    tokens = []
    for i in range(users):
        creds = {
            "email": f"fresh{i}-{uuid.uuid4().hex[:6]}@bench.example",
            "password": "bench-pass",
        }
        post_json(f"{command_url}/auth/register", creds)
        tokens.append(str(post_json(f"{command_url}/auth/login", creds)["access_token"]))
    return tokens


# --- CPU shares --------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def pids_of(pattern: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if re.search(pattern, cmdline):
                found.append(int(entry.name))
    return found


def infra_pids(database: str) -> dict[str, list[int]]:
    """PostgreSQL (the postmaster, its helpers and the backends of the bench's database, not other
    databases' backends) and the JVM of the project's Kafka broker (not other tests' brokers)."""
    backend = re.compile(r"^postgres: \S+ (\S+) \S+\(\d+\)")
    postgres = []
    for pid in [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]:
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() != "postgres":
                continue
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        m = backend.match(cmdline)
        if m is None or m.group(1) == database:
            postgres.append(pid)
    server_properties = (ROOT / ".data" / "kafka" / "server.properties").resolve()
    kafka = pids_of(rf"kafka\.Kafka {re.escape(str(server_properties))}")
    return {"PostgreSQL": postgres, "Kafka": kafka}


def cpu_snapshot(pids: dict[str, list[int]]) -> dict[str, float]:
    return {name: sum(cpu_seconds(p) for p in group) for name, group in pids.items()}


# --- the per-hop histograms ----------------------------------------------------------------------

_BUCKET = re.compile(r'^event_hop_seconds_bucket\{hop="([a-z_]+)",le="([^"]+)"\} ([0-9.e+]+)$')


def hop_buckets(urls: list[str]) -> dict[str, dict[float, float]]:
    """hop -> {upper bound: cumulative count} summed over the processes' /metrics."""
    out: dict[str, dict[float, float]] = {}
    for url in urls:
        with urllib.request.urlopen(url, timeout=5) as response:
            for line in response.read().decode().splitlines():
                if m := _BUCKET.match(line):
                    le = float("inf") if m.group(2) == "+Inf" else float(m.group(2))
                    bucket = out.setdefault(m.group(1), {})
                    bucket[le] = bucket.get(le, 0.0) + float(m.group(3))
    return out


def quantile(cumulative: dict[float, float], q: float) -> float | None:
    """Prometheus' histogram_quantile: linear within the bucket holding the q-th observation."""
    bounds = sorted(cumulative)
    total = cumulative[bounds[-1]] if bounds else 0
    if total <= 0:
        return None
    rank, lower, below = q * total, 0.0, 0.0
    for bound in bounds:
        count = cumulative[bound]
        if count >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / max(count - below, 1e-9)
        lower, below = bound, count
    return lower


def hop_quantiles(
    before: dict[str, dict[float, float]], after: dict[str, dict[float, float]]
) -> dict[str, tuple[float, float, int]]:
    out = {}
    for hop, buckets in after.items():
        diff = {le: n - before.get(hop, {}).get(le, 0.0) for le, n in buckets.items()}
        p50, p99 = quantile(diff, 0.5), quantile(diff, 0.99)
        if p50 is not None and p99 is not None:
            out[hop] = (p50 * 1000, p99 * 1000, int(diff[float("inf")]))
    return out


@dataclass
class System:
    """One copy of the freshness path (its checkout, ports, database, topics, users)."""

    label: str
    root: Path
    ports: Ports
    urls: dict[str, str]
    tokens: str  # file name
    pids: dict[str, list[int]]

    @property
    def metrics_urls(self) -> list[str]:
        return [
            f"http://127.0.0.1:{p}/metrics"
            for p in (self.ports.relay, self.ports.projector, self.ports.query)
        ]


def loadgen(system: System, rate: int, seconds: float) -> list[str]:
    return [
        str(LOADGEN),
        *("-command", system.urls["command"], "-query", system.urls["query"]),
        *("-tokens", system.tokens, "-rate", str(rate), "-seconds", str(seconds), "-warmup", "0"),
    ]


def start(stack: ExitStack, label: str, root: Path, port_base: int, users: int) -> System:
    database = f"bench_freshness_{label}"
    db = fresh_database(database)
    kafka = stack.enter_context(bench_topics())
    ports = Ports.from_base(port_base)
    services = start_system(stack, db, kafka, ports, root.resolve())
    urls = {
        "command": f"http://127.0.0.1:{ports.command}",
        "query": f"http://127.0.0.1:{ports.query}",
    }
    tokens = stack.enter_context(tempfile.NamedTemporaryFile("w", suffix=".tokens"))  # noqa: SIM115
    tokens.write("\n".join(user_tokens(urls["command"], users)) + "\n")
    tokens.flush()
    pids = {name: [pid] for name, pid in services.items()} | infra_pids(database)
    system = System(label, root, ports, urls, tokens.name, pids)
    # warm-up: connections, prepared statements, Kafka metadata, the projector's assignment
    subprocess.run(loadgen(system, 100, 3), check=True, stdout=subprocess.DEVNULL)
    return system
