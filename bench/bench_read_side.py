"""Read-side benchmarks, each beside a baseline measured in the same run (medians of --rounds):

1. Rebuild: `python -m projector rebuild`'s engine over N events (default 1,000,000) vs the raw rate
   of reading the same events from the store (select_notifications pages), vs reading plus
   translating them (to_public), and vs the rebuild's own reader (event_store.public_reader, one
   process), on a vacuumed and analysed store, each measure after a CHECKPOINT. Target: rebuild
   >= 100k events/s.
2. Query: `GET /tasks` (50 items) of the query API vs a plain FastAPI endpoint selecting the same 50
   rows (sync, psycopg pool, response_model), both under uvicorn with one worker, load from `wrk`.
   Target: >= 2x the baseline's throughput, p99 <= 20 ms.

Freshness (command answered -> visible through the query API) has its own benchmark,
bench/bench_freshness.py: an honest one needs a native open-model load generator over many users
(tools/loadgen), which the httpx client that used to measure it here was not.

    .venv/bin/python bench/bench_read_side.py [--events 1000000] [--rounds 3] [--only rebuild|query]
        [--database NAME]

Uses its own scratch database (bench_read_side, or --database for the rebuild; the events are
generated once and reused while their count matches).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from uuid import UUID

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402

from bench.harness import free_port, scratch_database, service, service_env  # noqa: E402
from bench.read_side_store import generate, public_count, vacuum_analyse  # noqa: E402
from contracts.task_schema import TaskPublic  # noqa: E402
from runtime.settings import DatabaseSettings  # noqa: E402

SCRATCH_DB = "bench_read_side"
BASELINE_APP = "bench.bench_read_side:create_baseline_app"


# --- 1. rebuild --------------------------------------------------------------------------------


def bench_rebuild(events: int, rounds: int, workers: int | None, database: str) -> list[str]:
    from event_store.application import TodoStore, store_env
    from event_store.public import PUBLIC_TOPICS, to_public
    from projector.rebuild import Rebuild
    from projector.settings import ProjectorSettings

    db = scratch_database(database, recreate=False)
    have = public_count(db)
    if abs(have - events) > 1000:
        print(f"scratch database has {have:,} events, generating {events:,}")
        db = scratch_database(database, recreate=True)
        generate(db, events)
    vacuum_analyse(db)
    store = TodoStore(env=store_env(db))
    head = store.recorder.max_notification_id() or 0

    def read_all(translate: bool) -> int:
        n, position = 0, 0
        while True:
            page = store.recorder.select_notifications(
                position, 10_000, stop=head, topics=PUBLIC_TOPICS, inclusive_of_start=False
            )
            if not page:
                return n
            position = page[-1].id
            if translate:
                n += sum(1 for x in page if to_public(store.mapper, x) is not None)
            else:
                n += len(page)

    def read_public() -> int:
        """What each rebuild worker does before folding (here unsharded, one process)."""
        from event_store.public_reader import PublicEventReader

        reader, n, position = PublicEventReader(store), 0, 0
        while position < head:
            n += len(reader.read(position, min(head, position + 10_000)))
            position += 10_000
        return n

    def checkpoint() -> None:
        """Each measure starts with no dirty buffers left by the one before: a rebuild writes ~1.4M
        rows, and the checkpoint they cause would otherwise land in whatever runs next."""
        with psycopg.connect(db.conninfo, autocommit=True) as conn:
            conn.execute("CHECKPOINT")

    def timed(action: Callable[[], int]) -> float:
        checkpoint()
        started = time.perf_counter()
        count = action()
        return count / (time.perf_counter() - started)

    raw, translated, public, rebuilt, details = [], [], [], [], []
    try:
        for r in range(rounds):
            raw.append(timed(lambda: read_all(False)))
            translated.append(timed(lambda: read_all(True)))
            public.append(timed(read_public))
            checkpoint()
            summary = Rebuild(
                store, db, ProjectorSettings(), workers=workers, show_progress=False
            ).run()
            rebuilt.append(summary.events_per_second)
            details.append(str(summary))
            print(f"  round {r + 1}: {summary}", file=sys.stderr)
    finally:
        store.close()
    med_raw, med_tr, med_pub, med_rb = map(statistics.median, (raw, translated, public, rebuilt))
    total = public_count(db)
    return [
        f"Rebuild of {total:,} events ({rounds} rounds, medians; last: {details[-1]})",
        f"  {'raw read (select_notifications)':40} {med_raw:>12,.0f} events/s   1.00x",
        f"  {'read + to_public':40} {med_tr:>12,.0f} events/s   {med_tr / med_raw:.2f}x",
        f"  {'PublicEventReader (read + translate)':40} {med_pub:>12,.0f} events/s   "
        f"{med_pub / med_raw:.2f}x",
        f"  {'rebuild (read, translate, fold, swap)':40} {med_rb:>12,.0f} events/s   "
        f"{med_rb / med_raw:.2f}x   target >= 100,000: {'met' if med_rb >= 100_000 else 'NOT met'}",
    ]


# --- 2. query throughput -----------------------------------------------------------------------


def create_baseline_app() -> FastAPI:
    """A plain FastAPI endpoint selecting the same 50 rows: `uvicorn --factory` target."""
    from psycopg_pool import ConnectionPool

    pool = ConnectionPool(DatabaseSettings().conninfo, min_size=10, max_size=10, open=True)
    app = FastAPI()

    @app.get("/tasks", response_model=list[TaskPublic])
    def tasks(user_id: UUID) -> list[dict[str, Any]]:
        with pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            cur.execute(
                "SELECT id, title, done, created_at, done_at, version FROM tasks"
                " WHERE user_id = %s AND NOT deleted ORDER BY created_at DESC, id DESC LIMIT 50",
                (user_id,),
            )
            return cur.fetchall()

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def run_wrk(url: str, headers: dict[str, str], seconds: int, connections: int) -> tuple[float, ...]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        for name, value in headers.items():
            f.write(f'wrk.headers["{name}"] = "{value}"\n')
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", f.name, url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    os.unlink(f.name)
    if errors := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        raise SystemExit(f"{errors.group(1)} failed requests:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return rps, _ms(out, "50%"), _ms(out, "99%")


def _ms(out: str, pct: str) -> float:
    value, unit = re.search(rf"{pct}\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def bench_queries(rounds: int, seconds: int, connections: int) -> list[str]:
    from http_api.auth import issue_token
    from runtime.settings import AuthSettings

    if not shutil.which("wrk"):
        raise SystemExit("wrk not found: apt-get install -y wrk")
    db = scratch_database(SCRATCH_DB, recreate=False)
    with psycopg.connect(db.conninfo) as conn:
        row = conn.execute(
            "SELECT user_id FROM tasks WHERE NOT deleted GROUP BY user_id"
            " HAVING count(*) >= 50 LIMIT 1"
        ).fetchone()
    if row is None:
        return ["Query: no user with 50 tasks in the scratch database; run the rebuild first"]
    user = row[0]
    token, _ = issue_token(user, AuthSettings())
    ours_port, base_port = free_port(), free_port()
    env = service_env(db, QUERY_API_PORT=str(ours_port))
    uvicorn = [sys.executable, "-m", "uvicorn", "--log-level", "warning", "--no-access-log"]
    results: dict[str, list[tuple[float, ...]]] = {"baseline": [], "query API": []}
    with (
        service(
            "query API",
            [sys.executable, "-m", "query_api"],
            env,
            f"http://127.0.0.1:{ours_port}/health",
        ),
        service(
            "baseline",
            [*uvicorn, "--port", str(base_port), "--factory", BASELINE_APP],
            env,
            f"http://127.0.0.1:{base_port}/health",
        ),
    ):
        targets = {
            "baseline": (f"http://127.0.0.1:{base_port}/tasks?user_id={user}", {}),
            "query API": (
                f"http://127.0.0.1:{ours_port}/tasks?limit=50",
                {"Authorization": f"Bearer {token}"},
            ),
        }
        for url, headers in targets.values():  # warm-up: pools, prepared statements
            run_wrk(url, headers, 2, connections)
        for _ in range(rounds):  # interleaved, so drift hits both alike
            for name, (url, headers) in targets.items():
                results[name].append(run_wrk(url, headers, seconds, connections))
    medians = {k: [statistics.median(c) for c in zip(*v, strict=True)] for k, v in results.items()}
    base_rps = medians["baseline"][0]
    rps, _p50, p99 = medians["query API"]
    lines = [
        f"GET /tasks, 50 items, wrk {connections} connections, {rounds}x{seconds}s, medians",
        f"  {'':12} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'vs baseline':>12}",
    ]
    for name, (r, p50, p99_) in medians.items():
        lines.append(f"  {name:12} {r:9.0f} {p50:8.2f} {p99_:8.2f} {r / base_rps:11.2f}x")
    lines.append(
        f"  targets: >= 2x throughput {'met' if rps >= 2 * base_rps else 'NOT met'},"
        f" p99 <= 20 ms {'met' if p99 <= 20 else 'NOT met'}"
    )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=None, help="rebuild workers (default: auto)")
    parser.add_argument(
        "--database", default=SCRATCH_DB, help="the rebuild's scratch database (its own store)"
    )
    parser.add_argument("--seconds", type=int, default=8, help="per wrk run")
    parser.add_argument("--connections", type=int, default=8, help="wrk connections")
    parser.add_argument("--only", choices=["rebuild", "query"], action="append", default=None)
    args = parser.parse_args()
    only = set(args.only or ["rebuild", "query"])
    report: list[str] = []
    if "rebuild" in only:
        report += bench_rebuild(args.events, args.rounds, args.workers, args.database)
    if "query" in only:
        report += bench_queries(args.rounds, args.seconds, args.connections)
    print(f"\nmachine: {os.cpu_count()} CPU cores")
    print("\n".join(report))


if __name__ == "__main__":
    main()
