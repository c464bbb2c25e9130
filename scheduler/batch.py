"""The digest batch: read every user's task stats from the read tables with set-based queries, then
record one digest per (user, local date) in the event store. A batch is for one date: all users
(`python -m scheduler run --date D`) or those of the timezones whose local date D has just begun
(scheduler/local_midnight.py); users with the digest off are not read at all.

Reading: keyset pages over `users` (by id); per page ONE aggregate query over `tasks` gives every
user's total/done counts and the first undone titles. So 100k users cost ~100 queries, not 100k.

Recording: `TodoStore.request_daily_digests`, one call per page (one existence query and one
transaction), one page at a time on a writer thread while the next page is read. (Several pages at
a time only make one huge group-committed transaction: at 16 pages of 2,000 the store did not
answer within its command timeout; bench/bench_digest.py.) The digest's id is uuid5(user, date),
so a record that already exists (second run, second replica, restart mid-batch) is refused by the
store and counted as "already recorded" — never a second digest.

Users without tasks (none, or all deleted) get no digest: an email saying "you have nothing" every
day is noise. Users whose tasks are all done do get one (their stats, no undone titles).
"""

from __future__ import annotations

import contextvars
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol
from uuid import UUID

import psycopg

from contracts.read_model import DEFAULT_TIMEZONE, column_list
from contracts.read_model import users as users_table

log = logging.getLogger(__name__)

Progress = Callable[[int], None]
_NIL_UUID = UUID(int=0)
_READ_ONLY = "-c default_transaction_read_only=on"  # the scheduler never writes the read tables

# Users with the digest on, all of them or those of some timezones (ix_users_timezone_id): the
# columns of a DigestCandidate's user (checked against contracts.read_model's declaration at
# import).
_USER = column_list(users_table, "id", "email", "timezone")
_USERS_PAGE = f"select {_USER} from users where digest_enabled and id > %s order by id limit %s"  # noqa: S608
_ZONE_USERS_PAGE = (
    f"select {_USER} from users where digest_enabled and timezone = any(%s)"  # noqa: S608
    " and id > %s order by id limit %s"
)

# One row per user of the page that has (non-deleted) tasks. Undone titles oldest first, capped.
_STATS_FOR_USERS = """
select user_id,
       count(*) as total,
       count(*) filter (where done) as done,
       coalesce(
         (array_agg(title order by created_at, id) filter (where not done))[1:%(max_titles)s::int],
         '{}'
       ) as undone_titles
from tasks
where user_id = any(%(user_ids)s) and not deleted
group by user_id
"""


@dataclass(frozen=True)
class DigestCandidate:
    """One user's digest content as read from the read tables."""

    user_id: UUID
    email: str
    total: int
    done: int
    undone_titles: tuple[str, ...]
    timezone: str = DEFAULT_TIMEZONE  # the user's: the digest date is a local date in it


class CandidateSource(Protocol):
    def count_users(self) -> int: ...

    def pages(self) -> Iterator[Sequence[DigestCandidate]]: ...


class DigestRecorder(Protocol):
    """What the batch needs from the store (TodoStore satisfies it): record a page of digests,
    answering per candidate the saved digest or None when it was already recorded."""

    def request_daily_digests(
        self, digest_date: date, requests: Sequence[DigestCandidate]
    ) -> Sequence[Any | None]: ...


class ReadTables:
    """Read-only access to `users` and `tasks`, in keyset pages of the users with the digest on
    (of `zones` only, if given)."""

    def __init__(
        self,
        conninfo: str,
        *,
        page_size: int,
        max_titles: int,
        zones: Sequence[str] | None = None,
    ) -> None:
        self._conninfo = conninfo
        self._page_size = page_size
        self._max_titles = max_titles
        self._zones = None if zones is None else list(zones)

    def count_users(self) -> int:
        with psycopg.connect(self._conninfo, autocommit=True, options=_READ_ONLY) as conn:
            row = conn.execute("select count(*) from users where digest_enabled").fetchone()
        return int(row[0]) if row else 0

    def enabled_timezones(self) -> list[str]:
        """The timezones of the users with the digest on."""
        with psycopg.connect(self._conninfo, autocommit=True, options=_READ_ONLY) as conn:
            rows = conn.execute("select distinct timezone from users where digest_enabled")
            return [r[0] for r in rows]

    def pages(self) -> Iterator[list[DigestCandidate]]:
        with psycopg.connect(self._conninfo, autocommit=True, options=_READ_ONLY) as conn:
            after = _NIL_UUID
            while True:
                users: list[tuple[UUID, str, str]] = (
                    conn.execute(_USERS_PAGE, (after, self._page_size))
                    if self._zones is None
                    else conn.execute(_ZONE_USERS_PAGE, (self._zones, after, self._page_size))
                ).fetchall()
                if not users:
                    return
                yield self._candidates(conn, users)
                if len(users) < self._page_size:
                    return
                after = users[-1][0]

    def _candidates(
        self, conn: psycopg.Connection[Any], users: list[tuple[UUID, str, str]]
    ) -> list[DigestCandidate]:
        rows = conn.execute(
            _STATS_FOR_USERS,
            {"user_ids": [u[0] for u in users], "max_titles": self._max_titles},
        ).fetchall()
        stats = {r[0]: (int(r[1]), int(r[2]), tuple(r[3])) for r in rows}
        return [
            DigestCandidate(user_id, email, *stats.get(user_id, (0, 0, ())), timezone=zone)
            for user_id, email, zone in users
        ]


@dataclass
class BatchSummary:
    digest_date: date
    users: int = 0
    recorded: int = 0
    already_recorded: int = 0
    skipped_no_tasks: int = 0
    failed: int = 0
    seconds: float = 0.0

    def as_log(self) -> dict[str, Any]:
        """Every field, in order (the date as ISO text, seconds rounded)."""
        fields = dataclasses.asdict(self)
        return fields | {
            "digest_date": self.digest_date.isoformat(),
            "seconds": round(self.seconds, 3),
        }

    def merged(self, other: BatchSummary) -> BatchSummary:
        """The counts of two batches together (a tick may run one per local date)."""
        counts = [f.name for f in dataclasses.fields(self) if f.name != "digest_date"]
        return BatchSummary(
            self.digest_date, *(getattr(self, c) + getattr(other, c) for c in counts)
        )

    def line(self) -> str:
        return (
            f"digest batch {self.digest_date}: {self.users} users,"
            f" {self.recorded} digests recorded, {self.already_recorded} already recorded,"
            f" {self.skipped_no_tasks} skipped (no tasks), {self.failed} failed,"
            f" in {self.seconds:.1f} s"
        )


class BatchFailedError(Exception):
    def __init__(self, summary: BatchSummary, cause: BaseException) -> None:
        super().__init__(f"digest batch for {summary.digest_date} failed: {cause!r}")
        self.summary = summary


@dataclass
class _Tally:
    """Counts from several threads; progress is reported per user settled."""

    summary: BatchSummary
    progress: Progress | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)
    error: BaseException | None = None

    def add(self, outcome: str, n: int = 1) -> None:
        if n <= 0:
            return
        with self.lock:
            setattr(self.summary, outcome, getattr(self.summary, outcome) + n)
        if self.progress is not None:
            self.progress(n)

    def fail(self, error: BaseException) -> None:
        with self.lock:
            self.error = self.error or error


class DigestBatch:
    """Records the digests of one date, a page per store call, reading the next page meanwhile.
    Safe to run any number of times, concurrently too."""

    def __init__(self, source: CandidateSource, recorder: DigestRecorder) -> None:
        self._source = source
        self._recorder = recorder

    def run(
        self,
        digest_date: date,
        progress: Progress | None = None,
        *,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> BatchSummary:
        """Record the date's digests; raises BatchFailedError if any record failed or the run
        was stopped (the run is then not complete and is retried as a whole: harmless)."""
        started = time.perf_counter()
        tally = _Tally(BatchSummary(digest_date), progress)
        with ThreadPoolExecutor(1, thread_name_prefix="digest") as writer:
            # Bounded hand-off: the reader stays at most one page ahead of the writer.
            slots = threading.BoundedSemaphore(2)
            for page in self._source.pages():
                if should_stop() and tally.error is None:
                    tally.fail(InterruptedError("stopped before the batch completed"))
                if tally.error is not None:
                    break  # stop feeding work; the run is retried as a whole later
                wanted = self._with_tasks(page, tally)
                if wanted:
                    slots.acquire()
                    # In the caller's context: its trace span tags the digest events.
                    record = contextvars.copy_context().run
                    writer.submit(record, self._record_page, digest_date, wanted, tally, slots)
        tally.summary.seconds = time.perf_counter() - started
        if tally.error is not None:
            raise BatchFailedError(tally.summary, tally.error) from tally.error
        return tally.summary

    @staticmethod
    def _with_tasks(page: Sequence[DigestCandidate], tally: _Tally) -> list[DigestCandidate]:
        """Users without tasks (or without an address) get no digest."""
        tally.summary.users += len(page)
        wanted = [c for c in page if c.total > 0 and c.email]
        tally.add("skipped_no_tasks", len(page) - len(wanted))
        return wanted

    def _record_page(
        self,
        digest_date: date,
        wanted: list[DigestCandidate],
        tally: _Tally,
        slots: threading.BoundedSemaphore,
    ) -> None:
        try:
            if tally.error is not None:
                return  # an earlier page failed: the run is retried as a whole
            results = self._recorder.request_daily_digests(digest_date, wanted)
            recorded = sum(1 for r in results if r is not None)
            tally.add("recorded", recorded)
            tally.add("already_recorded", len(wanted) - recorded)
        except Exception as e:
            tally.add("failed", len(wanted))
            tally.fail(e)
        finally:
            slots.release()
