"""The batch's decisions, with a fake read side and a fake store."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any
from uuid import UUID, uuid4

import pytest

from scheduler.batch import BatchFailedError, DigestBatch, DigestCandidate

DAY = date(2026, 11, 23)


class FakeSource:
    def __init__(self, *pages: Sequence[DigestCandidate]) -> None:
        self._pages = pages
        self.pages_read = 0

    def count_users(self) -> int:
        return sum(len(p) for p in self._pages)

    def pages(self) -> Iterator[Sequence[DigestCandidate]]:
        for page in self._pages:
            self.pages_read += 1
            yield page


class FakeStore:
    """Remembers digests per (user, date) like the store: a second record is refused (None)."""

    def __init__(self, existing: Sequence[UUID] = (), fail_for: UUID | None = None) -> None:
        self.recorded: dict[tuple[UUID, date], dict[str, Any]] = {(u, DAY): {} for u in existing}
        self.calls = 0
        self._fail_for = fail_for
        self._lock = threading.Lock()

    def request_daily_digest(
        self,
        user_id: UUID,
        digest_date: date,
        email: str,
        total: int,
        done: int,
        undone_titles: Sequence[str],
    ) -> object | None:
        with self._lock:
            self.calls += 1
            if user_id == self._fail_for:
                raise ConnectionError("database went away")
            if (user_id, digest_date) in self.recorded:
                return None
            self.recorded[(user_id, digest_date)] = {
                "email": email,
                "total": total,
                "done": done,
                "undone_titles": list(undone_titles),
            }
            return object()


def candidate(email: str, total: int = 2, done: int = 1, titles: Sequence[str] = ("x",)) -> Any:
    return DigestCandidate(uuid4(), email, total, done, tuple(titles))


def test_users_with_tasks_get_a_digest_with_their_content_and_users_without_are_skipped() -> None:
    ada = candidate("ada@example.com", total=3, done=1, titles=("a", "b"))
    all_done = candidate("bob@example.com", total=2, done=2, titles=())
    no_tasks = candidate("carol@example.com", total=0, done=0, titles=())
    store = FakeStore()

    summary = DigestBatch(FakeSource([ada, no_tasks], [all_done]), store, workers=2).run(DAY)

    assert (summary.users, summary.recorded, summary.skipped_no_tasks) == (3, 2, 1)
    assert store.recorded[(ada.user_id, DAY)] == {
        "email": "ada@example.com",
        "total": 3,
        "done": 1,
        "undone_titles": ["a", "b"],
    }
    assert store.recorded[(all_done.user_id, DAY)]["undone_titles"] == []
    assert (no_tasks.user_id, DAY) not in store.recorded


def test_digests_already_recorded_for_the_date_are_counted_not_recorded_again() -> None:
    users = [candidate(f"u{i}@example.com") for i in range(10)]
    store = FakeStore(existing=[u.user_id for u in users[:4]])

    summary = DigestBatch(FakeSource(users), store, workers=3).run(DAY)

    assert (summary.recorded, summary.already_recorded, summary.failed) == (6, 4, 0)
    assert len(store.recorded) == 10


def test_progress_is_reported_once_per_user() -> None:
    users = [candidate(f"u{i}@example.com", total=i % 2) for i in range(9)]
    ticks: list[int] = []
    lock = threading.Lock()

    def progress(n: int) -> None:
        with lock:
            ticks.append(n)

    DigestBatch(FakeSource(users[:5], users[5:]), FakeStore(), workers=4).run(DAY, progress)

    assert sum(ticks) == 9


def test_a_failing_record_fails_the_batch_so_it_is_not_marked_complete() -> None:
    users = [candidate(f"u{i}@example.com") for i in range(50)]
    store = FakeStore(fail_for=users[3].user_id)

    with pytest.raises(BatchFailedError) as failure:
        DigestBatch(FakeSource(users[:10], users[10:]), store, workers=1).run(DAY)

    assert failure.value.summary.failed == 1
    assert isinstance(failure.value.__cause__, ConnectionError)
    assert store.calls < 50, "stops feeding work after the first failure"


def test_a_stop_request_interrupts_the_batch_between_pages() -> None:
    pages = [[candidate(f"p{p}u{i}@example.com") for i in range(3)] for p in range(5)]
    source = FakeSource(*pages)
    stop_after_first_page = lambda: source.pages_read > 1  # noqa: E731

    with pytest.raises(BatchFailedError, match="stopped"):
        DigestBatch(source, FakeStore(), workers=1).run(DAY, should_stop=stop_after_first_page)

    assert source.pages_read == 2


class FakeBulkStore(FakeStore):
    """A store offering the proposed bulk method: one call per page."""

    def __init__(self, existing: Sequence[UUID] = ()) -> None:
        super().__init__(existing)
        self.bulk_calls: list[int] = []

    def request_daily_digests(
        self, digest_date: date, requests: Sequence[DigestCandidate]
    ) -> list[object | None]:
        self.bulk_calls.append(len(requests))
        return [
            self.request_daily_digest(
                r.user_id, digest_date, r.email, r.total, r.done, r.undone_titles
            )
            for r in requests
        ]


def test_a_store_with_the_bulk_method_records_each_page_in_one_call() -> None:
    first = [candidate(f"a{i}@example.com") for i in range(4)]
    second = [candidate(f"b{i}@example.com") for i in range(3)]
    second.append(candidate("empty@example.com", total=0, titles=()))
    store = FakeBulkStore(existing=[first[0].user_id])

    summary = DigestBatch(FakeSource(first, second), store, workers=4).run(DAY)

    assert store.bulk_calls == [4, 3], "users without tasks are not sent to the store"
    assert (summary.recorded, summary.already_recorded, summary.skipped_no_tasks) == (6, 1, 1)
