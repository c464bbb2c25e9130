"""`python -m projector dlq replay`: a parked event applied by the live projector's handlers and
SQL, inside the replay's transaction (consuming.dlq_cli), so the row and the read model change
together. Idempotent: an event already applied (e.g. by a rebuild) is a duplicate and just leaves
the list; a gap (an earlier event of the aggregate is missing) is refused and stays parked."""

from __future__ import annotations

from typing import Any

import psycopg

from consuming.poison import PoisonError
from contracts.dead_letters import DeadLetter
from contracts.events import decode_event
from projector.db import LIVE, PROJECTION_LOCK_KEY, load_rows, notify_progress, save_rows
from projector.handlers import Outcome, apply_event, referenced_ids


class ProjectorReplayer:
    def replay(self, cur: psycopg.Cursor[Any], letter: DeadLetter) -> None:
        event = decode_event(letter.value or b"")
        # Shared, like a live batch: a rebuild's swap cannot run in the middle of a replay.
        cur.execute("SELECT pg_advisory_xact_lock_shared(%s)", (PROJECTION_LOCK_KEY,))
        user_ids, task_ids = referenced_ids([event])
        rows = load_rows(cur, LIVE, user_ids, task_ids, for_update=True)
        if apply_event(rows, event) is Outcome.GAP:
            raise PoisonError(
                "an earlier event of this aggregate is missing (a gap): replay it first, or run"
                " `python -m projector rebuild`"
            )
        save_rows(cur, LIVE, rows)
        notify_progress(cur, rows.positions)

    def close(self) -> None:
        pass
