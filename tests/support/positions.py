"""A fake of the read side's position lookup for the read-your-writes waiters: what each user's
projection has reached, set by the test, and how many times the waiter asked."""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID


class Positions:
    def __init__(self) -> None:
        self.current: dict[UUID, int] = {}
        self.reads = 0

    async def __call__(self, user_ids: Sequence[UUID]) -> dict[UUID, int]:
        self.reads += 1
        return {u: self.current[u] for u in user_ids if u in self.current}
