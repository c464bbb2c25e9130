"""Commands/s and p99 of `POST /api/tasks` through the gateway (nginx) with one command API process
behind it, then two (each with its own group commit), in the same run, on the same PostgreSQL.
Load from `wrk` (Debian package) on loopback; rounds interleaved so drift hits both alike.

    .venv/bin/python bench/bench_command_replicas.py [--seconds 10] [--connections 32] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

from bench.bench_commands import run_wrk, server, token_for  # noqa: E402
from tests.support.gateway import private_gateway  # noqa: E402
from tests.support.infra import fresh_database  # noqa: E402
from tests.support.read_side import migrate  # noqa: E402
from tests.support.smtp import free_port  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found: apt-get install -y wrk")

    results: dict[str, list[tuple[float, float, float]]] = {"1 process": [], "2 processes": []}
    with fresh_database() as db, ExitStack() as stack:
        migrate(db)
        urls = [
            stack.enter_context(server("command_api", free_port(), db.POSTGRES_DB))
            for _ in range(2)
        ]
        upstreams = [u.removeprefix("http://") for u in urls]
        one = stack.enter_context(private_gateway(upstreams[:1])).url + "/api"
        two = stack.enter_context(private_gateway(upstreams)).url + "/api"
        token = token_for(urls[0])
        for url in (one, two):  # warm-up
            run_wrk(url, token, 2, args.connections)
        for _ in range(args.rounds):
            results["1 process"].append(run_wrk(one, token, args.seconds, args.connections))
            results["2 processes"].append(run_wrk(two, token, args.seconds, args.connections))

    medians = {
        k: [statistics.median(col) for col in zip(*v, strict=True)] for k, v in results.items()
    }
    base = medians["1 process"]
    print(f"\nPOST /api/tasks via nginx, {args.connections} connections,")
    print(f"{args.rounds}x{args.seconds}s, medians ({os.cpu_count()} cores)")
    print(f"{'':13} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'vs 1 process':>13}")
    for name, (rps, p50, p99) in medians.items():
        print(f"{name:13} {rps:9.0f} {p50:8.2f} {p99:8.2f} {rps / base[0]:12.2f}x")


if __name__ == "__main__":
    main()
