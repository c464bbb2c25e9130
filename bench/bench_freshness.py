"""Freshness benchmark (the project's only one): command answered by the command API -> visible
through the query API's read-your-writes read, under an open-model load spread over many users.

It starts the real processes as `make run` does (command API, query API, relay, projector) on its
own ports, database (bench_freshness, recreated) and Kafka topics (3 partitions, deleted at the
end), registers --users users, then runs tools/loadgen (Go, built by infra/go-tools.sh): at each
--rates rate, POST /tasks at fixed arrival times round-robin over the users, and for each command
GET /tasks/{id} with X-Min-Position = its X-Event-Position; the time from the command's answer to
the read's answer is one sample (a read answered X-Stale is counted, not sampled).

Per rate: medians over --rounds of p50/p99/max; the knee (lowest rate whose p99 passes 100 ms);
each process's CPU share over the round (% of one core, from /proc/<pid>/stat; PostgreSQL = all
its processes, Kafka = the broker's JVM); the generator's own share; and where the time goes: the
per-hop histograms the relay, projector and query API expose (`event_hop_seconds`, see
docs/operations.md), differenced over the round, p50/p99 interpolated within buckets.

    .venv/bin/python bench/bench_freshness.py [--rates 50,100,200,300,400] [--rounds 3]
        [--seconds 10] [--users 20] [--port-base 21000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
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

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

from common.settings import DatabaseSettings, KafkaSettings  # noqa: E402

LOADGEN = ROOT / ".data" / "go" / "bin" / "loadgen"
KNEE_MS = 100.0
TARGET_P99_MS = 50.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
HOPS = (
    ("stored_to_read", "event recorded -> read by the relay"),
    ("read_to_acked", "relay read -> Kafka acknowledged"),
    ("produced_to_received", "relay produce -> projector received"),
    ("received_to_applied", "projector received -> rows committed"),
    ("applied_to_offsets", "rows committed -> Kafka offsets committed"),
    ("notify_to_resolved", "NOTIFY sent -> waiter resolved (query API)"),
    ("wait", "query API: X-Min-Position wait"),
)


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


# --- one round -----------------------------------------------------------------------------------


@dataclass
class Round:
    p50: float
    p99: float
    max: float
    stale: int
    errors: int
    command_p50: float  # the command API's own latency (scheduled -> answered), for context
    command_p99: float
    cpu: dict[str, float]  # % of one core
    hops: dict[str, tuple[float, float, int]]


def run_round(args: argparse.Namespace, rate: int, system: System) -> Round:
    pids, metrics_urls = system.pids, system.metrics_urls
    hops_before = hop_buckets(metrics_urls)
    cpu_before = cpu_snapshot(pids)
    started = time.monotonic()
    proc = subprocess.Popen(loadgen(system, rate, args.seconds), stdout=subprocess.PIPE)
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"loadgen failed ({proc.returncode})")
    cpu_after = cpu_snapshot(pids)
    hops = hop_quantiles(hops_before, hop_buckets(metrics_urls))
    result = json.loads(output)
    cpu = {name: 100 * (cpu_after[name] - cpu_before[name]) / wall for name in pids}
    cpu["loadgen"] = 100 * (usage.ru_utime + usage.ru_stime) / wall
    fresh = result["freshness_ms"]
    if result["errors"]:
        print(f"  {result['errors']} errors, last: {result['last_error']}", file=sys.stderr)
    command = result["command_ms"]
    return Round(
        fresh["p50"], fresh["p99"], fresh["max"], result["stale"], result["errors"],
        command["p50"], command["p99"], cpu, hops,
    )  # fmt: skip


def median_round(rounds: list[Round]) -> Round:
    def med(values: list[float]) -> float:
        return statistics.median(values)

    hops = {}
    for hop in rounds[0].hops:
        values = [r.hops[hop] for r in rounds if hop in r.hops]
        hops[hop] = (
            med([v[0] for v in values]),
            med([v[1] for v in values]),
            sum(v[2] for v in values),
        )
    return Round(
        med([r.p50 for r in rounds]),
        med([r.p99 for r in rounds]),
        med([r.max for r in rounds]),
        sum(r.stale for r in rounds),
        sum(r.errors for r in rounds),
        med([r.command_p50 for r in rounds]),
        med([r.command_p99 for r in rounds]),
        {name: med([r.cpu[name] for r in rounds]) for name in rounds[0].cpu},
        hops,
    )


def report(results: dict[int, Round], args: argparse.Namespace) -> list[str]:
    names = list(next(iter(results.values())).cpu)
    lines = [
        "Freshness (command answered -> visible via X-Min-Position),"
        f" {args.users} users, open model, {args.rounds} rounds x {args.seconds:g} s per rate,"
        " medians; CPU in % of one core",
        f"  {'rate/s':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'stale':>5}"
        f" {'command p50/p99':>16} " + " ".join(f"{n:>11}" for n in names),
    ]
    for rate, r in results.items():
        lines.append(
            f"  {rate:>6} {r.p50:8.1f} {r.p99:8.1f} {r.max:8.1f} {r.stale:>5}"
            f" {r.command_p50:8.1f}/{r.command_p99:<7.1f} "
            + " ".join(f"{r.cpu[n]:11.0f}" for n in names)
        )
    knee = next((rate for rate, r in results.items() if r.p99 > KNEE_MS), None)
    lines.append(
        f"  knee (lowest rate with p99 > {KNEE_MS:.0f} ms): "
        + (f"{knee}/s" if knee else f"none up to {max(results)}/s")
    )
    if 200 in results:
        p99 = results[200].p99
        verdict = "met" if p99 <= TARGET_P99_MS else "NOT met"
        lines.append(f"  target p99 <= {TARGET_P99_MS:.0f} ms at 200/s: {verdict} ({p99:.1f} ms)")
    lines.append(
        "  per hop (p50 / p99 ms, interpolated in histogram buckets; n = events or reads):"
    )
    for rate, r in results.items():
        cells = [
            f"{hop} {r.hops[hop][0]:.1f}/{r.hops[hop][1]:.1f}" for hop, _ in HOPS if hop in r.hops
        ]
        lines.append(f"  {rate:>6}/s: " + ", ".join(cells))
    return lines


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument(
        "--rates", default="50,100,200,300,400", help="commands per second, comma-separated"
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10, help="per round")
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument(
        "--port-base", type=int, default=21000, help="ports base+1, +2, +11, +12 (baseline +100)"
    )
    parser.add_argument(
        "--baseline-root",
        type=Path,
        help="also run the services of this checkout (e.g. main), interleaved round by round",
    )
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    subprocess.run([str(ROOT / "infra" / "go-tools.sh"), "install"], check=True)
    results: dict[str, dict[int, Round]] = {}
    with ExitStack() as stack:
        systems = []
        if args.baseline_root:
            systems.append(
                start(stack, "baseline", args.baseline_root, args.port_base + 100, args.users)
            )
        systems.append(start(stack, "this", ROOT, args.port_base, args.users))
        for rate in rates:
            rounds: dict[str, list[Round]] = {s.label: [] for s in systems}
            for i in range(args.rounds):
                for system in systems:  # interleaved: drift on the machine hits both alike
                    r = run_round(args, rate, system)
                    shares = ", ".join(f"{k} {v:.0f}%" for k, v in r.cpu.items())
                    print(
                        f"  {system.label} {rate}/s round {i + 1}: p50 {r.p50:.1f} p99 {r.p99:.1f}"
                        f" max {r.max:.1f} ms, {r.stale} stale, command p99 {r.command_p99:.1f} ms,"
                        f" cpu {shares}",
                        file=sys.stderr,
                    )
                    rounds[system.label].append(r)
                    time.sleep(1)  # let the backlog of an overloaded round drain
            for label, measured in rounds.items():
                results.setdefault(label, {})[rate] = median_round(measured)
    print(f"\nmachine: {os.cpu_count()} CPU cores")
    for label, by_rate in results.items():
        root = args.baseline_root if label == "baseline" else ROOT
        print(f"\n[{label}: {root}]")
        print("\n".join(report(by_rate, args)))
    if "baseline" in results:
        ratios = [
            f"{rate}/s {results['this'][rate].p99 / max(results['baseline'][rate].p99, 1e-9):.2f}x"
            for rate in rates
        ]
        print("\np99 this / baseline: " + ", ".join(ratios))


if __name__ == "__main__":
    main()
