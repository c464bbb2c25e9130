"""The batch's decisions, with a fake read side and a fake store."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from datetime import date
from typing import Any
from uuid import UUID, uuid4

import pytest

from scheduler.batch import BatchFailedError, BatchSummary, DigestBatch, DigestCandidate

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
    """Records digests per (user, date) through the same bulk method as TodoStore: one atomic call
    per page, a digest already recorded answers None, a failure records nothing of the page."""

    def __init__(self, existing: Sequence[UUID] = (), fail_for: UUID | None = None) -> None:
        self.recorded: dict[tuple[UUID, date], dict[str, Any]] = {(u, DAY): {} for u in existing}
        self.pages: list[int] = []
        self._fail_for = fail_for
        self._lock = threading.Lock()

    def request_daily_digests(
        self, digest_date: date, requests: Sequence[DigestCandidate]
    ) -> list[object | None]:
        with self._lock:
            self.pages.append(len(requests))
            if any(r.user_id == self._fail_for for r in requests):
                raise ConnectionError("database went away")
            return [self._record(digest_date, r) for r in requests]

    def _record(self, digest_date: date, r: DigestCandidate) -> object | None:
        if (r.user_id, digest_date) in self.recorded:
            return None
        self.recorded[(r.user_id, digest_date)] = {
            "email": r.email,
            "total": r.total,
            "done": r.done,
            "undone_titles": list(r.undone_titles),
        }
        return object()


def candidate(email: str, total: int = 2, done: int = 1, titles: Sequence[str] = ("x",)) -> Any:
    return DigestCandidate(uuid4(), email, total, done, tuple(titles))


def test_users_with_tasks_get_a_digest_with_their_content_and_users_without_are_skipped() -> None:
    ada = candidate("ada@example.com", total=3, done=1, titles=("a", "b"))
    all_done = candidate("bob@example.com", total=2, done=2, titles=())
    no_tasks = candidate("carol@example.com", total=0, done=0, titles=())
    store = FakeStore()

    summary = DigestBatch(FakeSource([ada, no_tasks], [all_done]), store).run(DAY)

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

    summary = DigestBatch(FakeSource(users), store).run(DAY)

    assert (summary.recorded, summary.already_recorded, summary.failed) == (6, 4, 0)
    assert len(store.recorded) == 10


def test_progress_is_reported_once_per_user() -> None:
    users = [candidate(f"u{i}@example.com", total=i % 2) for i in range(9)]
    ticks: list[int] = []
    lock = threading.Lock()

    def progress(n: int) -> None:
        with lock:
            ticks.append(n)

    DigestBatch(FakeSource(users[:5], users[5:]), FakeStore()).run(DAY, progress)

    assert sum(ticks) == 9


def test_a_failing_record_fails_the_batch_so_it_is_not_marked_complete() -> None:
    users = [candidate(f"u{i}@example.com") for i in range(50)]
    store = FakeStore(fail_for=users[3].user_id)

    with pytest.raises(BatchFailedError) as failure:
        DigestBatch(FakeSource(users[:10], users[10:]), store).run(DAY)

    assert failure.value.summary.failed == 10, "a failed page is recorded whole or not at all"
    assert isinstance(failure.value.__cause__, ConnectionError)
    assert store.pages == [10], "stops recording after the first failure"
    assert store.recorded == {}


def test_a_stop_request_interrupts_the_batch_between_pages() -> None:
    pages = [[candidate(f"p{p}u{i}@example.com") for i in range(3)] for p in range(5)]
    source = FakeSource(*pages)
    stop_after_first_page = lambda: source.pages_read > 1  # noqa: E731

    with pytest.raises(BatchFailedError, match="stopped"):
        DigestBatch(source, FakeStore()).run(DAY, should_stop=stop_after_first_page)

    assert source.pages_read == 2


def test_each_page_is_recorded_in_one_store_call_without_the_users_lacking_tasks() -> None:
    first = [candidate(f"a{i}@example.com") for i in range(4)]
    second = [candidate(f"b{i}@example.com") for i in range(3)]
    second.append(candidate("empty@example.com", total=0, titles=()))
    store = FakeStore(existing=[first[0].user_id])

    summary = DigestBatch(FakeSource(first, second), store).run(DAY)

    assert store.pages == [4, 3], "users without tasks are not sent to the store"
    assert (summary.recorded, summary.already_recorded, summary.skipped_no_tasks) == (6, 1, 1)


def test_every_user_of_many_pages_is_settled_exactly_once() -> None:
    pages = [[candidate(f"p{p}u{i}@example.com") for i in range(7)] for p in range(20)]
    store = FakeStore()

    summary = DigestBatch(FakeSource(*pages), store).run(DAY)

    assert sorted(store.pages) == [7] * 20
    assert (summary.users, summary.recorded, summary.failed) == (140, 140, 0)
    assert {u for u, _ in store.recorded} == {c.user_id for page in pages for c in page}


def test_two_summaries_merged_add_up_every_count_and_keep_the_date() -> None:
    first = BatchSummary(date(2026, 12, 3), 10, 6, 2, 1, 1, 1.5)
    second = BatchSummary(date(2026, 12, 3), 4, 3, 1, 0, 0, 0.25)
    assert first.merged(second) == BatchSummary(date(2026, 12, 3), 14, 9, 3, 1, 1, 1.75)


def test_a_summary_logs_every_field_with_the_date_as_text() -> None:
    summary = BatchSummary(date(2026, 12, 3), 10, 6, 2, 1, 1, 1.23456)
    assert summary.as_log() == {
        "digest_date": "2026-12-03", "users": 10, "recorded": 6, "already_recorded": 2,
        "skipped_no_tasks": 1, "failed": 1, "seconds": 1.235,
    }  # fmt: skip
