"""The rebuild's bulk replay split across worker processes, one shard of the aggregates each."""

from __future__ import annotations

import multiprocessing as mp
import queue
from collections.abc import Callable
from multiprocessing.connection import Connection as Pipe
from typing import Any

import psycopg

from event_store.application import TodoStore, store_env
from event_store.public_reader import PublicEventReader
from event_store.store_queries import Shard
from projector.rebuild_fold import Replayer, ReplayStats, gc_paused
from projector.rebuild_reading import store_pages
from projector.settings import ProjectorSettings
from runtime.settings import DatabaseSettings

# advance({worker index: (position, events)}), called as workers report progress
Advance = Callable[[dict[int, tuple[int, int]]], None]


def _worker(
    db: DatabaseSettings,
    settings: ProjectorSettings,
    shard: Shard,
    stop: int,
    reports: Any,
    done: Pipe,
) -> None:
    """Bulk-replay one shard of the aggregates, in a process of its own."""
    reports.cancel_join_thread()  # progress reports are best effort: never block the exit on them
    # One reading connection is all this process uses of the store's pool.
    store = TodoStore(env=store_env(db.model_copy(update={"POSTGRES_POOL_SIZE": 1})))
    try:
        with psycopg.connect(db.conninfo) as conn, gc_paused():

            def report(stats: ReplayStats) -> None:
                reports.put((shard.index, stats.position, stats.events))

            replayer = Replayer(
                conn,
                store_pages(PublicEventReader(store), shard),
                page_size=settings.PROJECTOR_REBUILD_PAGE_SIZE,
                cache_rows=settings.PROJECTOR_REBUILD_CACHE_ROWS,
                on_page=report,
            )
            stats = replayer.replay(0, stop)
            replayer.finish()
        done.send((stats.events, stats.gaps, stats.refused, None))
    except BaseException as e:
        done.send((0, 0, 0, f"{type(e).__name__}: {e}"))
        raise
    finally:
        store.close()


def replay_in_processes(
    db: DatabaseSettings,
    settings: ProjectorSettings,
    head: int,
    workers: int,
    advance: Advance,
) -> ReplayStats:
    """Replay positions 1..head into the fresh tables with `workers` processes."""
    ctx = mp.get_context("spawn")
    reports = ctx.Queue()
    pipes: list[Pipe] = []
    processes = []
    for index in range(workers):
        receive, send = ctx.Pipe(duplex=False)
        process = ctx.Process(
            target=_worker,
            args=(db, settings, Shard(index, workers), head, reports, send),
            name=f"rebuild-{index}",
            daemon=True,
        )
        process.start()
        send.close()
        pipes.append(receive)
        processes.append(process)
    state: dict[int, tuple[int, int]] = {}
    results: dict[int, tuple[int, int, int, str | None]] = {}
    try:
        while len(results) < workers:
            try:
                index, position, events = reports.get(timeout=0.2)
                state[index] = (position, events)
                advance(state)
            except queue.Empty:
                pass
            for index, pipe in enumerate(pipes):
                if index not in results and pipe.poll():
                    results[index] = pipe.recv()
                elif index not in results and not processes[index].is_alive():
                    exitcode = processes[index].exitcode
                    results[index] = (0, 0, 0, f"worker exited with {exitcode}")
    finally:
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
                process.join(timeout=10)
    errors = [r[3] for r in results.values() if r[3]]
    if errors:
        raise RuntimeError(f"rebuild worker failed: {errors[0]}")
    return ReplayStats(
        events=sum(r[0] for r in results.values()),
        gaps=sum(r[1] for r in results.values()),
        refused=sum(r[2] for r in results.values()),
        position=head,
    )
