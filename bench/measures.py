"""What a benchmark reads off the system it loads: each process's CPU time (from /proc), the per-hop
histograms the services expose (/metrics), and both over the window in which a load generator
runs."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[1]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# --- CPU shares --------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def runqueue_seconds(pid: int) -> float:
    """How long the process's threads have waited, runnable, for a CPU (the second field of
    /proc/<pid>/task/*/schedstat, ns): on a machine short of cores, the part of a latency that no
    code path shows."""
    total = 0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return 0.0
    for task in tasks:
        try:
            total += int((task / "schedstat").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue  # a thread that ended meanwhile
    return total / 1e9


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


def runqueue_snapshot(pids: dict[str, list[int]]) -> dict[str, float]:
    return {name: sum(runqueue_seconds(p) for p in group) for name, group in pids.items()}


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


@dataclass(frozen=True)
class Measured:
    output: bytes  # what the load generator wrote (its JSON result)
    cpu: dict[str, float]  # % of one core over the window: each process group, the generator
    hops: dict[str, tuple[float, float, int]]  # hop -> (p50 ms, p99 ms, count) over the window
    # % of the window each process group's threads waited, runnable, for a CPU (summed over threads)
    waiting: dict[str, float] = field(default_factory=dict)


class LoadWindow:
    """Opened before (or while) a load generator runs, closed by its exit: the CPU shares and hop
    quantiles differenced over that window."""

    def __init__(self, pids: dict[str, list[int]], metrics_urls: list[str]) -> None:
        self.pids, self.metrics_urls = pids, metrics_urls
        self.hops_before = hop_buckets(metrics_urls)
        self.cpu_before = cpu_snapshot(pids)
        self.waiting_before = runqueue_snapshot(pids)
        self.started = time.monotonic()

    def until_exit(self, generator: subprocess.Popen[bytes], name: str) -> Measured:
        """Reads the rest of `generator`'s stdout and waits for it. Its own CPU share is of its
        whole run (whatever it did before the window opened too) over the window: a bound."""
        assert generator.stdout is not None
        output = generator.stdout.read()
        _, status, usage = os.wait4(generator.pid, 0)
        generator.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - self.started
        if generator.returncode != 0 or not output:
            raise SystemExit(f"{name} failed ({generator.returncode})")
        cpu_after = cpu_snapshot(self.pids)
        waiting_after = runqueue_snapshot(self.pids)
        cpu = {n: 100 * (cpu_after[n] - self.cpu_before[n]) / wall for n in self.pids}
        cpu[name] = 100 * (usage.ru_utime + usage.ru_stime) / wall
        waiting = {n: 100 * (waiting_after[n] - self.waiting_before[n]) / wall for n in self.pids}
        hops = hop_quantiles(self.hops_before, hop_buckets(self.metrics_urls))
        return Measured(output, cpu, hops, waiting)


def warn_errors(result: dict[str, Any]) -> None:
    """A load generator's failed requests, by kind, on stderr (they are counted, not sampled)."""
    kinds = result.get("error_kinds") or {}
    print(f"  {result['errors']} errors {kinds}, last: {result['last_error']}", file=sys.stderr)
