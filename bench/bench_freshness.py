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
its processes, Kafka = the broker's JVM); the generator's own share; how long each process's
threads waited, runnable, for a CPU (/proc/<pid>/task/*/schedstat); and where the time goes: the
per-hop histograms the relay, projector and query API expose (`event_hop_seconds`, see
docs/operations.md), differenced over the round, p50/p99 interpolated within buckets.

    .venv/bin/python bench/bench_freshness.py [--rates 50,100,200,300,400] [--rounds 3]
        [--seconds 10] [--users 20] [--port-base 21000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

from bench.freshness_system import (  # noqa: E402
    System,
    add_system_arguments,
    start_systems,
)
from bench.harness import add_round_arguments  # noqa: E402
from bench.measures import warn_errors  # noqa: E402
from runtime.metrics import FRESHNESS_HOPS  # noqa: E402

KNEE_MS = 100.0
TARGET_P99_MS = 50.0


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
    waiting: dict[str, float]  # % of the round its threads waited, runnable, for a CPU


def run_round(args: argparse.Namespace, rate: int, system: System) -> Round:
    window = system.load_window()
    proc = subprocess.Popen(system.loadgen(rate, args.seconds), stdout=subprocess.PIPE)
    load = window.until_exit(proc, "loadgen")
    result = json.loads(load.output)
    fresh = result["freshness_ms"]
    if result["errors"]:
        warn_errors(result)
    command = result["command_ms"]
    return Round(
        fresh["p50"], fresh["p99"], fresh["max"], result["stale"], result["errors"],
        command["p50"], command["p99"], load.cpu, load.hops, load.waiting,
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
        {name: med([r.waiting[name] for r in rounds]) for name in rounds[0].waiting},
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
    lines.append("  waiting, runnable, for a CPU (% of the round, all threads):")
    for rate, r in results.items():
        lines.append(f"  {rate:>6}/s: " + ", ".join(f"{n} {v:.0f}" for n, v in r.waiting.items()))
    lines.append(
        "  per hop (p50 / p99 ms, interpolated in histogram buckets; n = events or reads):"
    )
    for rate, r in results.items():
        cells = [
            f"{hop} {r.hops[hop][0]:.1f}/{r.hops[hop][1]:.1f}"
            for hop in FRESHNESS_HOPS
            if hop in r.hops
        ]
        lines.append(f"  {rate:>6}/s: " + ", ".join(cells))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument(
        "--rates", default="50,100,200,300,400", help="commands per second, comma-separated"
    )
    add_round_arguments(parser, seconds=10, per="round")
    parser.add_argument("--users", type=int, default=20)
    add_system_arguments(parser, port_base=21000)
    args = parser.parse_args()
    rates = [int(r) for r in args.rates.split(",")]
    subprocess.run([str(ROOT / "infra" / "go-tools.sh"), "install"], check=True)
    results: dict[str, dict[int, Round]] = {}
    with ExitStack() as stack:
        systems = start_systems(stack, args, baseline_label="baseline", label="this")
        for rate in rates:
            rounds: dict[str, list[Round]] = {s.label: [] for s in systems}
            for i in range(args.rounds):
                for system in systems:  # interleaved: drift on the machine hits both alike
                    r = run_round(args, rate, system)
                    shares = ", ".join(f"{k} {v:.0f}%" for k, v in r.cpu.items())
                    waits = ", ".join(f"{k} {v:.0f}%" for k, v in r.waiting.items())
                    print(
                        f"  {system.label} {rate}/s round {i + 1}: p50 {r.p50:.1f} p99 {r.p99:.1f}"
                        f" max {r.max:.1f} ms, {r.stale} stale, command p99 {r.command_p99:.1f} ms,"
                        f" cpu {shares}; waiting for a CPU {waits}",
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
