"""What a command can fail with beyond the domain's rules: conflicts with concurrent writers, and
an unreachable store. The command API maps them to 409 and 503."""

from __future__ import annotations

from eventsourcing.persistence import InterfaceError, OperationalError

CONFLICT_RETRIES = 5

# What eventsourcing raises when PostgreSQL cannot be reached (refused, connection lost, pool
# timeout): the store is unavailable, the command is not at fault.
STORE_UNAVAILABLE: tuple[type[Exception], ...] = (OperationalError, InterfaceError)


class ConcurrentChangeError(Exception):
    """Without If-Match, a command is re-run on the fresh state when another writer got in first;
    this is raised when that kept happening CONFLICT_RETRIES times in a row."""

    def __init__(self, attempts: int) -> None:
        super().__init__(
            f"the task was changed concurrently {attempts} times in a row; retry the request"
        )


class VersionConflictError(Exception):
    """The aggregate is not at the version the client expected (or changed concurrently)."""

    def __init__(self, expected: int, actual: int) -> None:
        super().__init__(f"expected version {expected}, current version is {actual}")
        self.expected = expected
        self.actual = actual
