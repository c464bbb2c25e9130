"""`python -m projector dlq ...` and `python -m mailer dlq ...`: the operators' view of the parked
messages (consuming.parking) of one consumer group, written once and mounted by both services.

    dlq list [--aggregate ID] [--json]     table of parked messages
    dlq replay (--aggregate ID | --all) [--json] [--no-progress]
                                           re-apply them in order through production's handlers
    dlq fix --topic T --partition P --offset O --value-file PATH|-
                                           replace a parked message's value (the fix of bad data)
    dlq discard --topic T --partition P --offset O
                                           drop one parked message for good (it stays on events.dlq)

Replay works per aggregate, in (topic, partition, offset) order, one transaction per message that
applies it and deletes its row; the first message that still fails stops its aggregate (it and
its followers stay parked, with the reason in `last_replay_error`) and the others carry on. Exit
code 1 when anything it was asked to replay is still parked.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any, Protocol

import psycopg

from consuming import parking
from consuming.poison import describe
from contracts.dead_letters import DeadLetter

Cursor = psycopg.Cursor[Any]


class Replayer(Protocol):
    def replay(self, cur: Cursor, letter: DeadLetter) -> None:
        """Apply one parked message as production would, inside the caller's transaction (the
        row is deleted in it on success); raise, with a reason, if it still cannot be applied."""

    def close(self) -> None: ...


def add_dlq_commands(sub: Any) -> None:
    """Mount `dlq list|replay|fix|discard` on a service's argparse subcommands."""
    dlq = sub.add_parser("dlq", help="parked (dead-lettered) messages: list, replay, fix, discard")
    commands = dlq.add_subparsers(dest="dlq_command", required=True)
    listing = commands.add_parser("list", help="table of parked messages")
    listing.add_argument("--aggregate", help="only this aggregate (task, user or digest id)")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    replay = commands.add_parser("replay", help="re-apply parked messages in order")
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--aggregate", help="replay this aggregate's parked messages")
    which.add_argument("--all", action="store_true", help="replay every parked message")
    replay.add_argument("--json", action="store_true", help="machine-readable summary")
    replay.add_argument("--no-progress", action="store_true", help="no progress bar")
    for name, text in (
        ("fix", "replace the value of one parked message"),
        ("discard", "drop one parked message for good"),
    ):
        one = commands.add_parser(name, help=text)
        one.add_argument("--topic", required=True)
        one.add_argument("--partition", type=int, required=True)
        one.add_argument("--offset", type=int, required=True)
        if name == "fix":
            one.add_argument("--value-file", required=True, help="new value, or - for stdin")


def run_dlq(
    args: argparse.Namespace,
    conninfo: str,
    consumer: str,
    replayer: Callable[[], Replayer],
) -> int:
    try:
        return _run(args, conninfo, consumer, replayer)
    except (psycopg.OperationalError, psycopg.InterfaceError) as e:
        # PostgreSQL unreachable or lost mid-way: whatever was replayed is committed, the rest is
        # still parked; running the command again carries on.
        print(f"database unavailable: {e}", file=sys.stderr)
        return 2


def _run(
    args: argparse.Namespace, conninfo: str, consumer: str, replayer: Callable[[], Replayer]
) -> int:
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
        if args.dlq_command == "list":
            return _list(conn, consumer, args.aggregate, args.json)
        if args.dlq_command == "replay":
            worker = replayer()
            try:
                return _replay(conn, consumer, worker, args)
            finally:
                worker.close()
        where = (args.topic, args.partition, args.offset)
        with conn.cursor() as cur:
            if args.dlq_command == "fix":
                try:
                    value = _read_value(args.value_file)
                except OSError as e:
                    print(f"cannot read the new value: {e}", file=sys.stderr)
                    return 2
                done = parking.set_value(cur, consumer, where, value)
            else:
                done = parking.discard(cur, consumer, where)
        if not done:
            print(f"no parked message at {'/'.join(map(str, where))}", file=sys.stderr)
            return 1
        print(f"{args.dlq_command}: {'/'.join(map(str, where))}")
        return 0


def _read_value(path: str) -> bytes:
    if path == "-":
        return sys.stdin.buffer.read()
    with open(path, "rb") as f:
        return f.read()


def _list(
    conn: psycopg.Connection[Any], consumer: str, aggregate: str | None, as_json: bool
) -> int:
    with conn.cursor() as cur:
        rows = parking.list_parked(cur, consumer, aggregate)
    if as_json:
        print(json.dumps([parking.as_dict(r) for r in rows], indent=2))
        return 0
    if not rows:
        print(f"no parked messages for consumer group {consumer!r}")
        return 0
    header = ("TOPIC", "PART", "OFFSET", "AGGREGATE", "EVENT TYPE", "KIND", "FAILED AT", "REASON")
    table = [header]
    for row in rows:
        d = parking.as_dict(row)
        reason = d["reason"] + (
            f" [replay: {d['last_replay_error']}]" if row.last_replay_error else ""
        )
        table.append(
            (
                d["topic"],
                str(d["partition"]),
                str(d["offset"]),
                d["aggregate_id"] or "-",
                d["event_type"] or "-",
                d["kind"],
                d["failed_at"][:19],
                reason[:120],
            )
        )
    widths = [max(len(line[i]) for line in table) for i in range(len(header) - 1)]
    for line in table:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=False)) + "  " + line[-1])
    print(f"{len(rows)} parked message(s)")
    return 0


def _replay(
    conn: psycopg.Connection[Any], consumer: str, worker: Replayer, args: argparse.Namespace
) -> int:
    from tqdm import tqdm  # only here: the services import this module at start-up

    with conn.cursor() as cur:
        rows = parking.list_parked(cur, consumer, None if args.all else args.aggregate)
    firsts: dict[str, parking.Parked] = {}
    for row in rows:
        firsts.setdefault(row.sequence, row)
    replayed = 0
    failures: list[dict[str, Any]] = []
    with tqdm(total=len(rows), unit="msg", disable=args.no_progress, file=sys.stderr) as bar:
        for first in firsts.values():
            while (step := _replay_next(conn, worker, first)) is not None:
                if isinstance(step, str):
                    failures.append({"aggregate": first.sequence, "reason": step})
                    break
                replayed += 1
                bar.update(1)
    with conn.cursor() as cur:
        left = parking.list_parked(cur, consumer, None if args.all else args.aggregate)
    summary = {"replayed": replayed, "still_parked": len(left), "failures": failures}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"replayed {replayed} message(s); {len(left)} still parked")
        for failure in failures:
            print(f"  {failure['aggregate']}: still fails: {failure['reason']}")
    return 1 if left else 0


def _replay_next(
    conn: psycopg.Connection[Any], worker: Replayer, first: parking.Parked
) -> parking.Parked | str | None:
    """Replay the sequence's first parked message: the row (done), a reason (still fails), or
    None (nothing left in the sequence)."""
    with conn.transaction(), conn.cursor() as cur:
        row = parking.next_in_sequence(cur, first)
        if row is None:
            return None
        where = "/".join(map(str, row.letter.where))
        try:
            with conn.transaction():  # a savepoint: a failure undoes the attempt, not the note
                worker.replay(cur, row.letter)
                parking.unpark(cur, row.letter)
        except Exception as e:
            reason = f"{where}: {describe(e)}"
            parking.note_replay_failure(cur, row.letter, describe(e))
            return reason
        return row
