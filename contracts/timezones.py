"""IANA time zone names, checked against the tz database (`zoneinfo`), as a pydantic type.

Kept out of the domain (which does no I/O: reading the tz database is I/O) and shared by the
command API's request bodies (registration, PATCH /me), so both accept exactly the same names.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated
from zoneinfo import ZoneInfo, available_timezones

from pydantic import AfterValidator, Field

# Names whose file exists but which name no zone people live in: the machine's own zone
# ("localtime" follows /etc/localtime, so it would differ between hosts) and tzdata's placeholder.
_NOT_ZONES = frozenset({"localtime", "Factory", "posixrules"})


@cache
def known_timezones() -> frozenset[str]:
    return frozenset(available_timezones() - _NOT_ZONES)


def is_iana_timezone(name: str) -> bool:
    return name in known_timezones()


def check_timezone(name: str) -> str:
    if not is_iana_timezone(name):
        raise ValueError("not an IANA time zone name (e.g. Europe/Paris, America/New_York, UTC)")
    ZoneInfo(name)  # loadable now, so the scheduler can always use it
    return name


# The spec lists the accepted names (an enum), so that a client, and schemathesis, knows exactly
# which strings are accepted: no pattern can describe the tz database.
TimezoneName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=64,
        description="An IANA time zone name of the tz database, e.g. `Europe/Paris`; anything"
        " else is a 422",
        json_schema_extra={"enum": sorted(known_timezones())},
        examples=["Europe/Paris"],
    ),
    AfterValidator(check_timezone),
]
