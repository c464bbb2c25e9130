"""The freshness benchmark's system under test: the four processes of the freshness path started
as `make run` starts them (own ports, database, Kafka topics, users), and which processes and
/metrics endpoints bench/measures.py reads. Used by bench/bench_freshness.py and bench_stream.py."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.harness import scratch_database, service, service_env
from bench.measures import LoadWindow, infra_pids
from runtime.settings import DatabaseSettings, KafkaSettings

ROOT = Path(__file__).parents[1]
LOADGEN = ROOT / ".data" / "go" / "bin" / "loadgen"

# --- infrastructure ----------------------------------------------------------------------------


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
    env = service_env(
        db,
        PYTHONPATH=str(app_root),
        KAFKA_TOPIC=kafka.KAFKA_TOPIC,
        KAFKA_DLQ_TOPIC=kafka.KAFKA_DLQ_TOPIC,
        PROJECTOR_GROUP_ID=f"bench-projector-{uuid.uuid4().hex[:6]}",
        COMMAND_API_PORT=str(ports.command),
        QUERY_API_PORT=str(ports.query),
        RELAY_HEALTH_PORT=str(ports.relay),
        PROJECTOR_HEALTH_PORT=str(ports.projector),
    )

    def python_m(name: str, args: list[str], port: int) -> int:
        local = f"http://127.0.0.1:{port}/health"
        cmd = [sys.executable, "-m", *args]
        return stack.enter_context(service(name, cmd, env, local, cwd=app_root)).pid

    return {
        "command API": python_m("command API", ["command_api"], ports.command),
        "query API": python_m("query API", ["query_api"], ports.query),
        "relay": python_m("relay", ["event_store", "relay"], ports.relay),
        "projector": python_m("projector", ["projector", "consume"], ports.projector),
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

    def load_window(self) -> LoadWindow:
        return LoadWindow(self.pids, self.metrics_urls)

    def loadgen(self, rate: int, seconds: float) -> list[str]:
        """The command line of tools/loadgen sending `rate` commands a second to this system."""
        return [
            str(LOADGEN),
            *("-command", self.urls["command"], "-query", self.urls["query"]),
            *("-tokens", self.tokens, "-rate", str(rate), "-seconds", str(seconds), "-warmup", "0"),
        ]


def start(stack: ExitStack, label: str, root: Path, port_base: int, users: int) -> System:
    database = f"bench_freshness_{label}"
    db = scratch_database(database, recreate=True)
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
    subprocess.run(system.loadgen(100, 3), check=True, stdout=subprocess.DEVNULL)
    return system


def add_system_arguments(parser: argparse.ArgumentParser, *, port_base: int) -> None:
    """`--port-base` (where this checkout's services listen) and `--baseline-root` (another
    checkout whose services are started too, on the ports 100 above, and measured round by round
    interleaved with this one's)."""
    parser.add_argument(
        "--port-base",
        type=int,
        default=port_base,
        help="ports base+1, +2, +11, +12 (baseline +100)",
    )
    parser.add_argument(
        "--baseline-root",
        type=Path,
        help="also run the services of this checkout (e.g. main), interleaved round by round",
    )


def start_systems(
    stack: ExitStack, args: argparse.Namespace, *, baseline_label: str, label: str
) -> list[System]:
    """The systems a round interleaves over, from add_system_arguments' `args` and `args.users`:
    the baseline checkout's first when one is named, then this checkout's."""
    systems = []
    if args.baseline_root:
        baseline_port_base = args.port_base + 100
        systems.append(
            start(stack, baseline_label, args.baseline_root, baseline_port_base, args.users)
        )
    systems.append(start(stack, label, ROOT, args.port_base, args.users))
    return systems
