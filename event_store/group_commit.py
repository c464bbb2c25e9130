"""Group commit: concurrent commands are saved together in one store transaction.

The PostgreSQL recorder serialises writers with a table lock (that is what keeps notification ids in
commit order for the relay), so one transaction per command caps throughput at roughly one lock
round-trip per command. Here one writer thread takes every command that queued up while the previous
transaction was in flight and records them in a single `save()`. If that combined save fails (one
command conflicted), each command is retried alone so only the guilty one sees the error; if it
failed because the database is unreachable, every command of the batch gets that error at once
(retrying them one by one would only make each wait for the outage again).

Bounded: a command waits at most `timeout` seconds, then gets CommandTimeoutError. One still queued
is withdrawn (it will never be recorded); one already being saved may still be. The writer thread
survives anything a save or a waiter's completion callback raises, and is restarted if it ever dies.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

from eventsourcing.persistence import Recording

from runtime.metrics import GROUP_COMMIT_COMMANDS_PER_TRANSACTION

log = logging.getLogger(__name__)

Save = Callable[..., list[Recording[Any]]]


class CommandTimeoutError(Exception):
    """The store did not record the command within the bound."""

    def __init__(self, seconds: float, *, maybe_recorded: bool) -> None:
        outcome = "it may still be recorded" if maybe_recorded else "it was not recorded"
        super().__init__(f"the store did not answer within {seconds:g} s; {outcome}")
        self.maybe_recorded = maybe_recorded


# Guards every _Pending's state: the writer taking a command vs its waiter giving up on it. One
# lock for all (rarely contended) rather than one more object allocated per command.
_STATE_LOCK = threading.Lock()


class _Pending:
    """One command waiting to be recorded. A sync waiter is woken by `on_done`; an async one by
    resolving `future` on its `loop` (the writer wakes each loop once per batch)."""

    __slots__ = ("_state", "error", "events", "finished", "future", "loop", "on_done", "recordings")

    def __init__(
        self,
        events: Sequence[Any],
        on_done: Callable[[], None] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        future: asyncio.Future[None] | None = None,
    ) -> None:
        self.events = events
        self.on_done = on_done
        self.loop = loop
        self.future = future
        self.recordings: list[Recording[Any]] = []
        self.error: BaseException | None = None
        self.finished = False
        self._state = "queued"  # → "taken" by the writer, or "abandoned" by a waiter that gave up

    def take(self) -> bool:
        with _STATE_LOCK:
            if self._state == "abandoned":
                return False
            self._state = "taken"
            return True

    def abandon(self) -> bool:
        """True if withdrawn before the writer took it (so it will never be recorded)."""
        with _STATE_LOCK:
            if self._state == "queued":
                self._state = "abandoned"
                return True
            return False

    def result(self) -> list[Recording[Any]]:
        if self.error is not None:
            raise self.error
        return self.recordings


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _resolve_all(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)


class GroupCommitter:
    def __init__(
        self,
        save: Save,
        max_batch: int = 64,
        *,
        timeout: float = 10.0,
        unavailable: tuple[type[BaseException], ...] = (),
    ) -> None:
        """`unavailable`: errors meaning the database cannot be reached (fail the whole batch)."""
        self._save = save
        self._max_batch = max_batch
        self._timeout = timeout
        self._unavailable = unavailable
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self.transactions = 0  # observability: commands per transaction = commands / transactions
        self.commands = 0
        self._closed = False
        self._start_lock = threading.Lock()
        # The writer's own: async waiters finished in the current batch, by event loop.
        self._to_wake: dict[asyncio.AbstractEventLoop, list[asyncio.Future[None]]] = {}
        self._thread = self._start_writer()

    def _start_writer(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
        thread.start()
        return thread

    def _enqueue(self, pending: _Pending) -> None:
        if not self._thread.is_alive() and not self._closed:
            with self._start_lock:
                if not self._thread.is_alive():
                    log.error("group commit writer was not running: restarting it")
                    self._thread = self._start_writer()
        self._queue.put(pending)

    def commit(self, events: Sequence[Any]) -> list[Recording[Any]]:
        """Record `events` (collected from aggregates) atomically; block until durable."""
        if not events:
            return []
        done = threading.Event()
        pending = _Pending(events, on_done=done.set)
        self._enqueue(pending)
        if not done.wait(self._timeout):
            self._give_up(pending)
        return pending.result()

    async def commit_async(self, events: Sequence[Any]) -> list[Recording[Any]]:
        """As commit(), for the event loop: awaits the writer thread instead of blocking a
        worker thread (saves a thread hop per command on the hot path)."""
        if not events:
            return []
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        pending = _Pending(events, loop=loop, future=future)
        self._enqueue(pending)
        # A timer rather than asyncio.wait_for: no extra task per command on the hot path.
        deadline = loop.call_later(self._timeout, _resolve, future)
        try:
            await future
        finally:
            deadline.cancel()
        if not pending.finished:
            self._give_up(pending)
        return pending.result()

    def _give_up(self, pending: _Pending) -> None:
        """The wait ran out: withdraw the command if still queued, else report it may be saved.
        Returns quietly if the writer finished it in the meantime."""
        withdrawn = pending.abandon()
        if not withdrawn and pending.finished:
            return
        log.warning(
            "command timed out in group commit",
            extra={"timeout_seconds": self._timeout, "withdrawn": withdrawn},
        )
        raise CommandTimeoutError(self._timeout, maybe_recorded=not withdrawn)

    def close(self) -> None:
        log.info(
            "group commit stats",
            extra={"commands": self.commands, "transactions": self.transactions},
        )
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            while len(batch) < self._max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)  # finish this batch, then stop
                    break
                batch.append(nxt)
            try:
                self._record(batch)
            except BaseException as e:  # a bug here must not hang every later command
                log.exception("group commit writer failed on a batch; carrying on")
                for p in batch:
                    if not p.finished:
                        p.error = e
                        self._finish(p)
            finally:
                self._wake_async_waiters()

    def _finish(self, pending: _Pending) -> None:
        pending.finished = True
        if pending.loop is not None and pending.future is not None:
            self._to_wake.setdefault(pending.loop, []).append(pending.future)
            return
        try:
            if pending.on_done is not None:
                pending.on_done()
        except Exception:
            log.exception("group commit completion callback failed")

    def _wake_async_waiters(self) -> None:
        """One thread-safe call per event loop and batch, not one per command: each costs the
        loop a wake-up and the writer a trip through the loop's lock."""
        to_wake, self._to_wake = self._to_wake, {}
        for loop, futures in to_wake.items():
            try:
                loop.call_soon_threadsafe(_resolve_all, futures)
            except Exception:  # e.g. that event loop is gone: its waiters alone are lost
                log.exception("group commit completion callback failed")

    def _record(self, batch: list[_Pending]) -> None:
        taken = [p for p in batch if p.take()]
        if not taken:
            return
        self.transactions += 1
        self.commands += len(taken)
        GROUP_COMMIT_COMMANDS_PER_TRANSACTION.observe(len(taken))
        if len(taken) > 1:
            try:
                recordings = self._save(*(e for p in taken for e in p.events))
            except self._unavailable as e:
                self._fail_all(taken, e)
                return
            except Exception:
                log.debug("combined save failed, retrying %d commands one by one", len(taken))
            else:
                offset = 0
                for p in taken:
                    p.recordings = recordings[offset : offset + len(p.events)]
                    offset += len(p.events)
                    self._finish(p)
                return
        for i, p in enumerate(taken):
            try:
                p.recordings = self._save(*p.events)
            except self._unavailable as e:
                self._fail_all(taken[i:], e)
                return
            except BaseException as e:
                p.error = e
            self._finish(p)

    def _fail_all(self, pendings: list[_Pending], error: BaseException) -> None:
        for p in pendings:
            p.error = error
            self._finish(p)
