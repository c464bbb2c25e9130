"""Task commands beside a login flood: p50/p99 latency of `POST /tasks` without and with 50
concurrent bad logins, in the same run, against one real command API process (uvicorn, bcrypt at
BCRYPT_ROUNDS=12 as in production) on the real PostgreSQL. Target: p99 with the flood <= 2x p99
without.

    .venv/bin/python bench/bench_login_flood.py [--rounds 3] [--seconds 10] [--rate 100]
                                                [--flood 50] [--bcrypt-workers 0]

Load: two generator processes beside the server (httpx + asyncio; wrk has no fixed-rate mode and
cannot vary headers per request):
- tasks: open loop at a fixed rate (--rate per second); a latency counts from the request's
  scheduled start, so a stalled server cannot hide behind fewer requests (coordinated omission).
- flood: --flood concurrent loops of bad logins, each from its own address. The rate limits would
  stop a flood from one address (50 failures a minute), so each login comes, as through the
  gateway, from loopback (a trusted proxy) with its own X-Forwarded-For address and a fresh
  email: no limit refuses them, every one runs bcrypt, and the throttle's SQL is still on the path.

Rounds alternate "without" and "with flood" phases, so drift hits both alike; medians of the rounds
are printed, with where the CPU went (server's event-loop thread vs its other threads, bcrypt
checks answered per second).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

from bench.harness import add_round_arguments  # noqa: E402
from bench.login_flood_load import login_flood, task_load  # noqa: E402
from tests.support.infra import fresh_database  # noqa: E402
from tests.support.read_side import migrate  # noqa: E402

PORT = 22021
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --- orchestration ---------------------------------------------------------------------------


def cpu_seconds(pid: int) -> dict[str, float]:
    """CPU time of a process, split into its main thread (the event loop) and the others."""
    split = {"event_loop": 0.0, "other_threads": 0.0}
    for task in Path(f"/proc/{pid}/task").iterdir():
        fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        used = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime
        split["event_loop" if task.name == str(pid) else "other_threads"] += used
    return split


@contextmanager
def command_api(
    db_name: str, bcrypt_workers: int, app_root: Path
) -> Iterator[subprocess.Popen[bytes]]:
    env = {
        **os.environ,
        "PYTHONPATH": str(app_root),
        "POSTGRES_DB": db_name,
        "COMMAND_API_PORT": str(PORT),
        "BCRYPT_ROUNDS": "12",
        "BCRYPT_WORKERS": str(bcrypt_workers),
        "LOG_LEVEL": "WARNING",
    }
    proc = subprocess.Popen([sys.executable, "-m", "command_api"], cwd=app_root, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{PORT}/ready", timeout=1)
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("the command API did not become ready") from None
                time.sleep(0.2)
        yield proc
    finally:
        proc.kill()  # not terminate: a graceful stop would wait for the queued bad logins
        proc.wait(timeout=20)


def role(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, "--role", *args], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )


def measure_tasks(url: str, token: str, args: argparse.Namespace) -> dict[str, Any]:
    proc = role("tasks", url, token, str(args.rate), str(args.seconds))
    out, _ = proc.communicate()
    result: dict[str, Any] = json.loads(out)
    failed = {k: v for k, v in result["statuses"].items() if k != "201"}
    if failed:
        raise SystemExit(f"task commands failed: {failed}")
    return result


def one_round(server: subprocess.Popen[bytes], url: str, token: str, args: Any) -> dict[str, Any]:
    def phase() -> tuple[dict[str, Any], dict[str, float]]:
        """Task commands for args.seconds (plus however long the last answers take); the
        server's CPU over that time, in cores."""
        cpu_before, started = cpu_seconds(server.pid), time.perf_counter()
        result = measure_tasks(url, token, args)
        cpu_after, elapsed = cpu_seconds(server.pid), time.perf_counter() - started
        return result, {k: (cpu_after[k] - cpu_before[k]) / elapsed for k in cpu_before}

    quiet, cpu_without = phase()
    flood = role("flood", url, str(args.flood))
    time.sleep(args.settle)  # let the flood fill the bcrypt queue before measuring
    loud, cpu_with = phase()
    flood.send_signal(signal.SIGTERM)
    flood_out, _ = flood.communicate(timeout=300)
    flooded = json.loads(flood_out)
    return {
        "p99_without": quiet["p99_ms"],
        "p99_with": loud["p99_ms"],
        "p50_without": quiet["p50_ms"],
        "p50_with": loud["p50_ms"],
        "max_with": loud["max_ms"],
        "cpu_without": cpu_without,
        "cpu_with": cpu_with,
        "logins_per_s": flooded["statuses"].get("401", 0) / flooded["seconds"],
        "flood_statuses": flooded["statuses"],
        "max_ms_by_second": (quiet["max_ms_by_second"], loud["max_ms_by_second"]),
    }


def token_for(url: str) -> str:
    creds = {"email": "bench@example.com", "password": "bench-password"}
    with httpx.Client(base_url=url, timeout=30) as client:
        client.post("/auth/register", json=creds).raise_for_status()
        return str(client.post("/auth/login", json=creds).json()["access_token"])


def main() -> None:
    parser = argparse.ArgumentParser()
    add_round_arguments(parser, seconds=10.0, per="phase")
    parser.add_argument("--rate", type=float, default=100.0, help="task commands per second")
    parser.add_argument("--flood", type=int, default=50, help="concurrent bad logins")
    parser.add_argument("--settle", type=float, default=2.0)
    parser.add_argument("--bcrypt-workers", type=int, default=0, help="0: the setting's default")
    parser.add_argument(
        "--app-root",
        type=Path,
        default=ROOT,
        help="checkout whose command API is measured (e.g. an older one, for a baseline)",
    )
    parser.add_argument("--role", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        kind, url, *rest = args.role
        if kind == "tasks":
            result = asyncio.run(task_load(url, rest[0], float(rest[1]), float(rest[2])))
        else:
            result = asyncio.run(login_flood(url, int(rest[0])))
        print(json.dumps(result))
        return

    url = f"http://127.0.0.1:{PORT}"
    rounds = []
    with fresh_database() as db:
        migrate(db)
        with command_api(db.POSTGRES_DB, args.bcrypt_workers, args.app_root) as server:
            token = token_for(url)
            measure_tasks(url, token, argparse.Namespace(rate=args.rate, seconds=2))  # warm-up
            for n in range(args.rounds):
                rounds.append(one_round(server, url, token, args))
                r = rounds[-1]
                print(
                    f"round {n + 1}: p99 {r['p99_without']:.1f} ms -> {r['p99_with']:.1f} ms "
                    f"with flood ({r['logins_per_s']:.1f} bad logins/s answered); slowest "
                    f"per second: {r['max_ms_by_second'][0]} -> {r['max_ms_by_second'][1]}",
                    file=sys.stderr,
                )

    def med(key: str, sub: str | None = None) -> float:
        return float(statistics.median(r[key][sub] if sub else r[key] for r in rounds))

    ratio = med("p99_with") / med("p99_without")
    print(
        f"\nPOST /tasks at {args.rate:.0f}/s, {args.flood} concurrent bad logins "
        f"(BCRYPT_ROUNDS=12), {args.rounds}x{args.seconds:.0f}s per phase, medians"
    )
    print(f"{'':14} {'p50 ms':>8} {'p99 ms':>8}")
    print(f"{'without flood':14} {med('p50_without'):8.1f} {med('p99_without'):8.1f}")
    print(f"{'with flood':14} {med('p50_with'):8.1f} {med('p99_with'):8.1f}")
    verdict = "OK" if ratio <= 2 else "ABOVE TARGET"
    print(f"p99 with / without: {ratio:.2f}x (target <= 2x: {verdict})")
    print(
        "server CPU (cores busy): without flood event loop "
        f"{med('cpu_without', 'event_loop'):.2f}, other threads "
        f"{med('cpu_without', 'other_threads'):.2f}; with flood event loop "
        f"{med('cpu_with', 'event_loop'):.2f}, other threads (bcrypt pool, store) "
        f"{med('cpu_with', 'other_threads'):.2f}; bad logins answered "
        f"{med('logins_per_s'):.1f}/s"
    )


if __name__ == "__main__":
    main()
