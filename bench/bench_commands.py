"""Commands/s and p50/p99 latency of `POST /tasks` through the full write stack (JWT, domain,
event store with group commit), side by side with two plain FastAPI endpoints that insert one row,
in the same run, on the same PostgreSQL, one process each, the same wrk load (loopback):

- `peer` (bench/peer_app.py): the strongest plain peer, an async endpoint with the same JWT check
  and an async psycopg pool. The target (issue 12): >= 1.5x its req/s, p99 no worse.
- `baseline` (bench/baseline_app.py): a sync endpoint (threadpool, sync pool, no JWT check).

    .venv/bin/python bench/bench_commands.py [--seconds 10] [--connections 32] [--rounds 3]
        [--port 8101] [--profile out.txt]

`--profile` records the command API with py-spy (dev extra) during its last round and writes the
collapsed stacks (one line per stack: frames separated by `;`, then the sample count).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

from runtime.settings import DatabaseSettings  # noqa: E402
from tests.support.infra import fresh_database  # noqa: E402
from tests.support.read_side import migrate  # noqa: E402

LUA = """
wrk.method = "POST"
wrk.body = '{"title": "benchmark task"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
"""


@contextmanager
def server(module: str, port: int, db: str) -> Iterator[str]:
    with server_process(module, port, db) as (url, _pid):
        yield url


@contextmanager
def server_process(module: str, port: int, db: str) -> Iterator[tuple[str, int]]:
    """A server (`module` for uvicorn, or the command API's own entry point): its URL and pid."""
    env = {**os.environ, "POSTGRES_DB": db, "BCRYPT_ROUNDS": "4", "LOG_LEVEL": "WARNING"}
    cmd = [sys.executable, "-m", "uvicorn", module, "--port", str(port), "--log-level", "warning"]
    if module == "command_api":
        cmd = [sys.executable, "-m", "command_api"]
        env["COMMAND_API_PORT"] = str(port)
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(url + "/docs", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        yield url, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@contextmanager
def _migrated(db: DatabaseSettings) -> Iterator[None]:
    migrate(db)
    yield


def post(url: str, body: dict[str, str]) -> dict[str, object]:
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req) as resp:
        return dict(json.loads(resp.read()))


def token_for(url: str) -> str:
    creds = {"email": "bench@example.com", "password": "bench-password"}
    post(url + "/auth/register", creds)
    return str(post(url + "/auth/login", creds)["access_token"])


Result = tuple[float, float, float]  # req/s, p50 ms, p99 ms


def run_wrk(url: str, token: str, seconds: int, connections: int) -> Result:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(LUA % token)
    out = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            f.name,
            url + "/tasks",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise SystemExit(f"{errors.group(1)} failed requests:\n{out}")
    return rps, ms(out, "50%"), ms(out, "99%")


def ms(out: str, pct: str) -> float:
    value, unit = re.search(rf"{pct}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


@contextmanager
def profiled(pid: int, path: str | None, seconds: int) -> Iterator[None]:
    """py-spy on `pid` for the block (idle threads left out: only where the CPU goes)."""
    if path is None:
        yield
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    cmd = [spy, "record", "-p", str(pid), "-d", str(seconds), "-r", "200", "--format", "raw"]
    proc = subprocess.Popen([*cmd, "-o", path], stdout=subprocess.DEVNULL)
    try:
        yield
    finally:
        proc.wait(timeout=seconds + 30)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--port", type=int, default=8101, help="first of three ports")
    parser.add_argument("--profile", help="py-spy raw output file for the command API")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found: apt-get install -y wrk")

    apps = {"baseline": "bench.baseline_app:app", "peer": "bench.peer_app:app"}
    results: dict[str, list[Result]] = {"baseline": [], "peer": [], "event-sourced": []}
    with (
        fresh_database() as db,
        # the command API's login keeps its rate limits in the migrated table auth_throttle
        _migrated(db),
        server(apps["baseline"], args.port, db.POSTGRES_DB) as baseline_url,
        server(apps["peer"], args.port + 1, db.POSTGRES_DB) as peer_url,
        server_process("command_api", args.port + 2, db.POSTGRES_DB) as (es_url, es_pid),
    ):
        urls = {"baseline": baseline_url, "peer": peer_url, "event-sourced": es_url}
        token = token_for(es_url)
        for url in urls.values():  # warm-up all
            run_wrk(url, token, 2, args.connections)
        for round_no in range(args.rounds):  # interleaved, so drift hits all alike
            for name, url in urls.items():
                last_es = name == "event-sourced" and round_no == args.rounds - 1
                with profiled(es_pid, args.profile if last_es else None, args.seconds):
                    results[name].append(run_wrk(url, token, args.seconds, args.connections))

    medians = {
        k: [statistics.median(col) for col in zip(*v, strict=True)] for k, v in results.items()
    }
    peer, base = medians["peer"], medians["baseline"]
    print(f"\nPOST /tasks, {args.connections} connections, {args.rounds}x{args.seconds}s, medians")
    print(
        f"{'':15} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'req/s vs peer':>14} {'p99 vs peer':>12} {'req/s vs baseline':>18}"
    )
    for name, (rps, p50, p99) in medians.items():
        print(
            f"{name:15} {rps:9.0f} {p50:8.2f} {p99:8.2f}"
            f" {rps / peer[0]:13.2f}x {p99 / peer[2]:11.2f}x {rps / base[0]:17.2f}x"
        )
    for name, rounds in results.items():
        print(f"{name:15} rounds (req/s, p50, p99): {rounds}")


if __name__ == "__main__":
    main()
