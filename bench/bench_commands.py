"""Commands/s and p50/p99 latency of `POST /tasks` through the full write stack (JWT, domain,
event store with group commit), side by side with a plain FastAPI endpoint inserting one row with
psycopg, in the same run, on the same PostgreSQL. Load from `wrk` (Debian package) on loopback.

    .venv/bin/python bench/bench_commands.py [--seconds 10] [--connections 32] [--rounds 3]
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

from common.settings import DatabaseSettings  # noqa: E402
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
        yield url
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


def run_wrk(url: str, token: str, seconds: int, connections: int) -> tuple[float, float, float]:
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


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk not found: apt-get install -y wrk")

    results: dict[str, list[tuple[float, float, float]]] = {"baseline": [], "event-sourced": []}
    with (
        fresh_database() as db,
        # the command API's login keeps its rate limits in the migrated table auth_throttle
        _migrated(db),
        server("bench.baseline_app:app", 8101, db.POSTGRES_DB) as baseline_url,
        server("command_api", 8102, db.POSTGRES_DB) as es_url,
    ):
        token = token_for(es_url)
        run_wrk(es_url, token, 2, args.connections)  # warm-up both
        run_wrk(baseline_url, token, 2, args.connections)
        for _ in range(args.rounds):  # interleaved, so drift hits both alike
            results["baseline"].append(run_wrk(baseline_url, token, args.seconds, args.connections))
            results["event-sourced"].append(run_wrk(es_url, token, args.seconds, args.connections))

    medians = {
        k: [statistics.median(col) for col in zip(*v, strict=True)] for k, v in results.items()
    }
    base = medians["baseline"]
    print(f"\nPOST /tasks, {args.connections} connections, {args.rounds}x{args.seconds}s, medians")
    print(f"{'':15} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'throughput vs baseline':>24}")
    for name, (rps, p50, p99) in medians.items():
        print(f"{name:15} {rps:9.0f} {p50:8.2f} {p99:8.2f} {rps / base[0]:23.2f}x")


if __name__ == "__main__":
    main()
