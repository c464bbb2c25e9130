"""The command's trace in the stored event's metadata (eventsourcing's in-memory store)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from uuid import uuid4

import pytest
from eventsourcing.persistence import StoredEvent

from event_store.application import TodoStore
from event_store.trace_metadata import TRACE_KEY
from runtime import tracing

A = tracing.TraceContext("a" * 32, "1" * 16)
B = tracing.TraceContext("b" * 32, "2" * 16)


@pytest.fixture
def store() -> Iterator[TodoStore]:
    store = TodoStore()  # in memory
    try:
        yield store
    finally:
        store.close()


def _stored(store: TodoStore) -> list[StoredEvent]:
    return list(store.recorder.select_notifications(start=1, limit=100))


def _traces(store: TodoStore) -> list[str | None]:
    mapper = store.tracing_mapper
    return [mapper.to_domain_event_with_trace(n)[1] for n in _stored(store)]


def test_the_current_trace_is_stored_with_the_event_and_read_back(store: TodoStore) -> None:
    user = uuid4()
    with tracing.bound(A):
        task = store.create_task(user, "write the report").aggregate
    with tracing.bound(B):
        store.update_task(user, task.id, done=True)
    assert _traces(store) == [A.traceparent, B.traceparent]
    assert TRACE_KEY.encode() in _stored(store)[0].state  # really in the stored state


def test_the_trace_never_reaches_the_domain_event_or_the_aggregate(store: TodoStore) -> None:
    user = uuid4()
    with tracing.bound(A):
        task_id = store.create_task(user, "plain").aggregate.id
    event = store.mapper.to_domain_event(_stored(store)[0])
    assert TRACE_KEY not in vars(event)
    reloaded = store.get_task(user, task_id)
    assert reloaded.title == "plain" and not hasattr(reloaded, TRACE_KEY)


def test_an_event_saved_without_a_trace_loads_and_has_none(store: TodoStore) -> None:
    user = uuid4()
    task_id = store.create_task(user, "old event").aggregate.id  # as before tracing existed
    assert TRACE_KEY.encode() not in _stored(store)[0].state
    assert _traces(store) == [None]
    assert store.get_task(user, task_id).title == "old event"


def test_the_async_command_path_stores_the_callers_trace(store: TodoStore) -> None:
    async def create() -> None:
        with tracing.bound(A):
            await store.create_task_async(uuid4(), "async")

    asyncio.run(create())
    assert _traces(store) == [A.traceparent]


def test_group_commit_keeps_each_commands_own_trace(store: TodoStore) -> None:
    """Many callers on many threads, saved together by the writer thread: every event carries
    its own caller's trace, not the writer's (which has none) nor a neighbour's."""
    contexts = [tracing.new_context() for _ in range(40)]
    expected: dict[str, str] = {}
    lock = threading.Lock()
    start = threading.Barrier(len(contexts))

    def command(ctx: tracing.TraceContext) -> None:
        start.wait()
        with tracing.bound(ctx):
            task = store.create_task(uuid4(), f"task {ctx.trace_id}").aggregate
        with lock:
            expected[str(task.id)] = ctx.traceparent

    threads = [threading.Thread(target=command, args=(c,)) for c in contexts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store._committer.transactions < len(contexts)  # some really were grouped
    mapper = store.tracing_mapper
    got = {}
    for n in _stored(store):
        event, traceparent = mapper.to_domain_event_with_trace(n)
        got[str(event.originator_id)] = traceparent
    assert got == expected
