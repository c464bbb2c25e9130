"""What a query API process knows of users' applied positions (see KnownPositions)."""

from __future__ import annotations

from uuid import UUID


class KnownPositions:
    """What this process knows of users' applied positions, to spare most reads their first
    database look (one query per read-your-writes read was the query API's largest cost after
    the request itself).

    Positions only grow (`greatest`, also across a rebuild), and a notification is only sent
    once its batch is committed, so every position seen is a lower bound: at or above the wanted
    one means reached. A user's position read from the database *while listening* is moreover
    exact from then on, since every later commit that moves it notifies us: then below the wanted
    one means not reached yet, without asking. Exactness is forgotten whenever notifications may
    have been missed (reconnect) or did not say whom they moved (`*`); a listener that died
    silently only delays answers until the periodic re-check, never answers early, and the last
    look at the bound always asks the database.
    """

    LIMIT = 100_000  # users remembered; beyond, everything is forgotten (memory stays bounded)

    def __init__(self) -> None:
        self._lower: dict[UUID, int] = {}
        self._exact: set[UUID] = set()
        self.session = 0  # bumped whenever exactness is forgotten

    def verdict(self, user_id: UUID, position: int) -> bool | None:
        """True (reached) / False (not yet) when known, None when the database must say."""
        if self._lower.get(user_id, 0) >= position:
            return True
        return False if user_id in self._exact else None

    def raise_to(self, positions: dict[UUID, int]) -> None:
        if len(self._lower) + len(positions) > self.LIMIT:
            self._lower.clear()
            self.forget_exact()
        for user_id, reached in positions.items():
            if reached > self._lower.get(user_id, 0):
                self._lower[user_id] = reached

    def learn_exact(self, user_id: UUID, position: int, session: int) -> None:
        """`position` was read while listening, in `session` (exact unless that ended)."""
        self.raise_to({user_id: position})
        if session == self.session:
            if len(self._exact) >= self.LIMIT:
                self.forget_exact()
            else:
                self._exact.add(user_id)

    def forget_exact(self) -> None:
        self._exact.clear()
        self.session += 1
