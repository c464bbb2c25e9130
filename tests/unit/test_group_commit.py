from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace
from typing import Any

import pytest

from event_store.group_commit import GroupCommitter


class FakeStore:
    """Records each save() call; refuses any save containing a 'bad' event."""

    def __init__(self, slow: threading.Event | None = None) -> None:
        self.saves: list[list[Any]] = []
        self.next_id = 0
        self.slow = slow
        self.lock = threading.Lock()

    def save(self, *events: Any) -> list[Any]:
        if self.slow is not None:
            self.slow.wait(2)
        with self.lock:
            if "bad" in events:
                raise ValueError("conflict")
            self.saves.append(list(events))
            recordings = []
            for e in events:
                self.next_id += 1
                recordings.append(
                    SimpleNamespace(event=e, notification=SimpleNamespace(id=self.next_id))
                )
            return recordings


def events_of(recordings: list[Any]) -> list[Any]:
    return [r.event for r in recordings]


def test_each_command_gets_back_the_recordings_of_its_own_events() -> None:
    store = FakeStore()
    committer = GroupCommitter(store.save)
    recordings = committer.commit(["a1", "a2"])
    assert events_of(recordings) == ["a1", "a2"]
    committer.close()


def gated_committer() -> tuple[threading.Event, FakeStore, GroupCommitter]:
    """A committer whose store holds every save until the test sets the gate."""
    gate = threading.Event()
    store = FakeStore(slow=gate)
    return gate, store, GroupCommitter(store.save)


def test_commands_queued_while_a_save_is_in_flight_are_saved_together() -> None:
    gate, store, committer = gated_committer()
    with ThreadPoolExecutor(8) as pool:
        first = pool.submit(committer.commit, ["first"])
        others = [pool.submit(committer.commit, [f"e{i}"]) for i in range(7)]
        gate.set()
        results = [f.result(timeout=5) for f in [first, *others]]
    committer.close()
    assert [events_of(r) for r in results] == [["first"], *[[f"e{i}"] for i in range(7)]]
    assert len(store.saves) < 8  # grouped: fewer transactions than commands
    assert sorted(e for s in store.saves for e in s) == sorted(
        ["first", *[f"e{i}" for i in range(7)]]
    )


def test_a_failing_command_in_a_group_fails_alone() -> None:
    gate, _, committer = gated_committer()
    with ThreadPoolExecutor(4) as pool:
        blocker = pool.submit(committer.commit, ["blocker"])
        good = pool.submit(committer.commit, ["good"])
        bad = pool.submit(committer.commit, ["bad"])
        gate.set()
        assert events_of(blocker.result(timeout=5)) == ["blocker"]
        assert events_of(good.result(timeout=5)) == ["good"]
        with pytest.raises(ValueError, match="conflict"):
            bad.result(timeout=5)
    committer.close()


def test_committing_nothing_records_nothing() -> None:
    store = FakeStore()
    committer = GroupCommitter(store.save)
    assert committer.commit([]) == []
    committer.close()
    assert store.saves == []


def test_async_callers_await_their_own_recordings() -> None:
    store = FakeStore()
    committer = GroupCommitter(store.save)

    async def commit_five() -> list[list[Any]]:
        return list(await asyncio.gather(*(committer.commit_async([f"a{i}"]) for i in range(5))))

    results = asyncio.run(commit_five())
    committer.close()
    assert [events_of(r) for r in results] == [[f"a{i}"] for i in range(5)]


def test_an_async_caller_sees_the_error_of_its_own_failed_command() -> None:
    committer = GroupCommitter(FakeStore().save)
    with pytest.raises(ValueError, match="conflict"):
        asyncio.run(committer.commit_async(["bad"]))
    committer.close()
