"""Daily digest benchmarks, each beside a baseline measured in the same run (scratch database and
topics on the real PostgreSQL and Kafka; nothing of yours is touched):

1. Scheduler batch for N users (default 100k): the full `run_date` (read tables → store) vs. the
   raw time of its read queries alone (keyset pages + per-page aggregate), recording through the
   store's bulk method TodoStore.request_daily_digests, one page at a time.
2. Mailer emails/s into a local SMTP sink vs. raw aiosmtplib on one connection in the same run
   (bench/bench_mailer.py). `--before DIR` (another checkout, e.g. of main; may be repeated)
   also runs that checkout's mailer in every round: before/after interleaved.

    .venv/bin/python bench/bench_digest.py [--users 100000] [--emails 3000] [--runs 3]
        [--only mailer] [--before ../main-checkout] [--sink-port 1025]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ENVIRONMENT", "test")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import psycopg  # noqa: E402

from bench.bench_mailer import bench_mailer  # noqa: E402
from runtime.settings import DatabaseSettings  # noqa: E402


def median(values: list[float]) -> float:
    return statistics.median(values)


# --- 1. scheduler batch ---------------------------------------------------------------------


def populate(db: DatabaseSettings, users: int) -> tuple[int, int]:
    """`users` users; 90% with 1-9 tasks (~30% done, ~5% deleted), 10% without tasks."""
    with psycopg.connect(db.conninfo, autocommit=True) as conn:
        conn.execute(
            "insert into users (id, email, created_at, version, position)"
            " select gen_random_uuid(), 'user' || i || '@bench.example.com', now(), 1, i"
            " from generate_series(1, %s) i",
            (users,),
        )
        conn.execute(
            "insert into tasks (id, user_id, title, done, created_at, done_at, version, deleted,"
            " position)"
            " select gen_random_uuid(), u.id, 'task ' || j || ' of ' || u.email, random() < 0.3,"
            " now() - j * interval '1 minute', null, 1, random() < 0.05, 1"
            " from users u, generate_series(1, 9) j"
            " where abs(hashtext(u.email)) % 10 <> 0 and j <= 1 + abs(hashtext(u.email)) % 9"
        )
        conn.execute("analyze users")
        conn.execute("analyze tasks")
        row = conn.execute("select count(*) from tasks").fetchone()
    return users, int(row[0]) if row else 0


def bench_batch(users: int, runs: int) -> None:
    from event_store.application import TodoStore, store_env
    from scheduler.batch import ReadTables
    from scheduler.service import DigestService
    from scheduler.settings import SchedulerSettings
    from tests.support.digest import SeededReadSide
    from tests.support.infra import fresh_database
    from tests.support.read_side import migrate

    settings = SchedulerSettings()
    print(f"\n== scheduler batch: {users} users, {runs} runs")
    with fresh_database() as db:
        migrate(db)
        started = time.perf_counter()
        _, tasks = populate(db, users)
        print(f"populated {users} users, {tasks} tasks in {time.perf_counter() - started:.1f} s")
        source = ReadTables(
            db.conninfo,
            page_size=settings.SCHEDULER_PAGE_SIZE,
            max_titles=settings.SCHEDULER_MAX_UNDONE_TITLES,
        )
        reads: list[float] = []
        for _ in range(runs):
            started = time.perf_counter()
            assert sum(len(page) for page in source.pages()) == users
            reads.append(time.perf_counter() - started)
        r = median(reads)
        print(f"baseline: read queries alone, median {r:.2f} s")
        day = date(2026, 11, 1)
        for label in ["bulk: TodoStore.request_daily_digests per page, next page read meanwhile"]:
            store = TodoStore(env=store_env(db))
            try:
                service = DigestService(settings, db, store, SeededReadSide(store))
                batches, reruns = [], []
                recorded = 0
                for run in range(runs):
                    day += timedelta(days=1)  # a new date: every digest is new
                    summary = service.run_date(day, skip_if_completed=False)
                    assert summary is not None and summary.users == users
                    batches.append(summary.seconds)
                    recorded = summary.recorded
                    rerun = service.run_date(day, skip_if_completed=False)
                    assert rerun is not None and rerun.recorded == 0
                    reruns.append(rerun.seconds)
                    print(
                        f"  {label} run {run + 1}: batch {batches[-1]:.2f} s"
                        f" ({summary.recorded} digests), idempotent re-run {reruns[-1]:.2f} s"
                    )
            finally:
                store.close()
            b = median(batches)
            target = "OK" if b * 100_000 / users < 30 else "MISSED"
            print(
                f"{label}: median {b:.2f} s for {users} users ({recorded} digests,"
                f" {recorded / b:.0f}/s), re-run {median(reruns):.2f} s,"
                f" batch/read-baseline {b / r:.1f}x; 100k users < 30 s: {target}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--emails", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=["batch", "mailer"], default=None)
    parser.add_argument("--before", type=Path, action="append", default=[], help="checkout")
    parser.add_argument("--sink-port", type=int, default=None, help="SMTP sink port (default: any)")
    args = parser.parse_args()
    steps: dict[str, Callable[[], None]] = {
        "batch": lambda: bench_batch(args.users, args.runs),
        "mailer": lambda: bench_mailer(args.emails, args.runs, args.before, args.sink_port),
    }
    for name, step in steps.items():
        if args.only in (None, name):
            step()


if __name__ == "__main__":
    main()
