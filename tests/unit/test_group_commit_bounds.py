"""Group commit under faults (finding 7 of issue 8): a waiting command is bounded in time, the
writer thread survives anything a save or a completion callback raises, and an unreachable
database fails the whole batch at once instead of once per command."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import pytest

from event_store.group_commit import CommandTimeoutError, GroupCommitter


class DatabaseDownError(Exception):
    """Stands for eventsourcing's OperationalError (what the store passes as `unavailable`)."""


class Meltdown(BaseException):
    """Not even an Exception: something no save should ever raise."""


class FakeStore:
    """save() records events and hands out ids; it can be held at a gate, fail, or melt down."""

    def __init__(self) -> None:
        self.saved: list[Any] = []
        self.calls = 0
        self.gate: threading.Event | None = None
        self.entered = threading.Event()
        self.error: BaseException | None = None
        self.lock = threading.Lock()

    def save(self, *events: Any) -> list[Any]:
        with self.lock:
            self.calls += 1
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(10)
        if self.error is not None:
            raise self.error
        with self.lock:
            self.saved.extend(events)
            start = len(self.saved) - len(events)
        return [SimpleNamespace(event=e, notification=SimpleNamespace(id=start + i + 1))
                for i, e in enumerate(events)]  # fmt: skip


def events_of(recordings: list[Any]) -> list[Any]:
    return [r.event for r in recordings]


def hold_the_writer(store: FakeStore, committer: GroupCommitter, pool: ThreadPoolExecutor) -> Any:
    """Start a command whose save blocks at the gate: the writer is busy until the gate opens."""
    store.gate = threading.Event()
    blocker = pool.submit(committer.commit, ["blocker"])
    assert store.entered.wait(5)
    return blocker


def test_a_command_queued_longer_than_the_bound_times_out_and_is_never_recorded() -> None:
    store = FakeStore()
    committer = GroupCommitter(store.save, timeout=0.3)
    with ThreadPoolExecutor(2) as pool:
        blocker = hold_the_writer(store, committer, pool)
        started = time.monotonic()
        with pytest.raises(CommandTimeoutError) as timed_out:
            committer.commit(["late"])
        assert 0.25 <= time.monotonic() - started < 3
        assert timed_out.value.maybe_recorded is False
        # Held past the bound too, while its save is still at the gate (so it cannot have
        # finished: the gate opens only after its own timeout has been seen).
        with pytest.raises(CommandTimeoutError):
            blocker.result(5)
        assert store.gate is not None
        store.gate.set()
    assert committer.commit(["after"])  # the writer carries on
    committer.close()
    assert "late" not in store.saved and store.saved == ["blocker", "after"]


def test_a_command_whose_save_outlasts_the_bound_times_out_saying_it_may_be_recorded() -> None:
    store = FakeStore()
    store.gate = threading.Event()
    committer = GroupCommitter(store.save, timeout=0.3)
    with pytest.raises(CommandTimeoutError) as timed_out:
        committer.commit(["slow"])
    assert timed_out.value.maybe_recorded is True
    store.gate.set()
    committer.close()


def test_an_async_command_is_bounded_too() -> None:
    store = FakeStore()
    committer = GroupCommitter(store.save, timeout=0.3)
    with ThreadPoolExecutor(2) as pool:
        blocker = hold_the_writer(store, committer, pool)
        with pytest.raises(CommandTimeoutError):
            asyncio.run(committer.commit_async(["late"]))
        with pytest.raises(CommandTimeoutError):  # its save is still at the gate
            blocker.result(5)
        assert store.gate is not None
        store.gate.set()
    committer.close()
    assert "late" not in store.saved


def test_the_writer_survives_a_completion_callback_that_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An async waiter whose event loop is gone by the time its save completes: waking it raises
    in the writer thread ("Event loop is closed"). Later commands must still be served."""
    store = FakeStore()
    store.gate = threading.Event()
    committer = GroupCommitter(store.save, timeout=0.2)
    with pytest.raises(CommandTimeoutError):
        asyncio.run(committer.commit_async(["orphan"]))  # the loop closes right after
    store.gate.set()  # now the save completes and the writer wakes a closed loop
    store.gate = None
    recordings = committer.commit(["next"])
    assert events_of(recordings) == ["next"]
    committer.close()
    assert "group commit completion callback failed" in caplog.messages


def test_the_writer_survives_even_a_base_exception_from_a_save() -> None:
    store = FakeStore()
    committer = GroupCommitter(store.save, timeout=5)
    store.error = Meltdown()
    with pytest.raises(Meltdown):
        committer.commit(["doomed"])
    store.error = None
    assert events_of(committer.commit(["fine"])) == ["fine"]
    committer.close()


def test_an_unreachable_database_fails_the_whole_batch_with_one_attempt() -> None:
    store = FakeStore()
    committer = GroupCommitter(store.save, timeout=5, unavailable=(DatabaseDownError,))
    with ThreadPoolExecutor(9) as pool:
        blocker = hold_the_writer(store, committer, pool)
        waiting = [pool.submit(committer.commit, [f"c{i}"]) for i in range(8)]
        time.sleep(0.2)  # let them queue up behind the blocker
        store.error = DatabaseDownError("connection refused")
        calls_before = store.calls
        assert store.gate is not None
        store.gate.set()
        with pytest.raises(DatabaseDownError):
            blocker.result(5)
        for future in waiting:
            with pytest.raises(DatabaseDownError):
                future.result(5)
    # the 8 queued commands were tried together once, not once each
    assert store.calls - calls_before == 1
    committer.close()


def test_a_refused_command_in_a_batch_still_fails_alone_when_the_database_is_up() -> None:
    store = FakeStore()
    committer = GroupCommitter(store.save, timeout=5, unavailable=(DatabaseDownError,))
    original = store.save

    def refuse_bad(*events: Any) -> list[Any]:
        if "bad" in events:
            raise ValueError("conflict")
        return original(*events)

    committer._save = refuse_bad
    with ThreadPoolExecutor(4) as pool:
        blocker = hold_the_writer(store, committer, pool)
        good, bad = pool.submit(committer.commit, ["good"]), pool.submit(committer.commit, ["bad"])
        time.sleep(0.2)
        assert store.gate is not None
        store.gate.set()
        blocker.result(5)
        assert events_of(good.result(5)) == ["good"]
        with pytest.raises(ValueError, match="conflict"):
            bad.result(5)
    committer.close()
