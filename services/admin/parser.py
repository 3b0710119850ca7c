"""The `taskrelay admin` command line: its subcommands, and input checked before anything runs.

Bad input (a malformed id or duration, a missing choice) ends the command with status 2 and
one line, as the command's own refusals do (an unknown id, a task that cannot be retried).
"""

from __future__ import annotations

import argparse
import re
import sys
from typing import Any, NoReturn
from uuid import UUID

from shared.domain import Status

USAGE_ERROR = 2
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class OneLineParser(argparse.ArgumentParser):
    """Reports bad input in one line (argparse's own adds the usage), status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(USAGE_ERROR, f"{self.prog}: {message}\n")


def duration(raw: str) -> float:
    """Seconds in `90s`, `10m`, `1h30m`, `2d` (or a plain number of seconds)."""
    text = raw.strip().lower()
    try:
        return _non_negative(float(text))
    except ValueError:
        pass
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise argparse.ArgumentTypeError(
            f"{raw!r} is not a duration: use e.g. 90s, 10m, 1h30m or 2d"
        )
    return _non_negative(sum(float(n) * _UNIT_SECONDS[u] for n, u in parts))


def _non_negative(seconds: float) -> float:
    if not 0 <= seconds < 10**10:
        raise argparse.ArgumentTypeError(f"{seconds:g} s is not a duration from 0 on")
    return seconds


def task_id(raw: str) -> UUID:
    try:
        return UUID(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a task id (a UUID)") from None


def row_id(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"{raw!r} is not an outbox row id (a positive integer)")
    return int(raw)


def positive(raw: str) -> int:
    if not raw.isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"{raw!r} is not a positive integer")
    return int(raw)


def add_admin_parser(sub: Any, run: Any) -> None:
    """Add `admin` and its subcommands to `taskrelay`'s subparsers; `run` runs any of them."""
    admin = sub.add_parser(
        "admin",
        help="inspect and act on what is parked, dead-lettered or slow",
        description="Exit status: 0 done, 1 a dependency is down (named), 2 bad input.",
    )
    admin.error = OneLineParser.error.__get__(admin)  # one line, like its subcommands
    admin.set_defaults(run=run, parser=admin)
    what = admin.add_subparsers(
        dest="admin_command", required=True, metavar="WHAT", parser_class=OneLineParser
    )

    outbox = what.add_parser("outbox", help="backlog, oldest unpublished age, parked rows")
    _json_option(outbox)
    action = outbox.add_subparsers(dest="action", metavar="[ACTION]")
    replay = action.add_parser("replay", help="put parked rows back in line (in order per task)")
    replay.add_argument("ids", nargs="*", type=row_id, metavar="ID", help="parked row ids")
    replay.add_argument("--all-parked", action="store_true", help="every parked row")

    dead = what.add_parser("dead-letters", help="dead-lettered job messages, with why")
    _json_option(dead)
    dead.add_argument(
        "--limit", type=positive, default=1000, help="list at most this many (default 1000)"
    )
    action = dead.add_subparsers(dest="action", metavar="[ACTION]")
    action.add_parser("replay", help="send every dead-lettered job message back to the jobs queue")
    drop = action.add_parser("drop", help="delete every dead-lettered job message (asks first)")
    drop.add_argument("--yes", action="store_true", help="do not ask")

    tasks = what.add_parser("tasks", help="unfinished or failed tasks: age, progress, errors")
    _json_option(tasks)
    tasks.add_argument(
        "--status",
        choices=[s.value for s in Status],
        help="only this status (default: pending, processing, failed, partial_failure)",
    )
    tasks.add_argument(
        "--older-than",
        type=duration,
        default=0.0,
        metavar="DURATION",
        help="only tasks created at least this long ago: 90s, 10m, 1h30m, 2d",
    )
    tasks.add_argument("--user", metavar="U", help="only this user's tasks")
    tasks.add_argument(
        "--limit", type=positive, default=100, help="list at most this many (default 100)"
    )
    action = tasks.add_subparsers(dest="action", metavar="[ACTION]")
    for name, does in (("retry", "retry"), ("cancel", "cancel")):
        act = action.add_parser(name, help=f"{does} tasks, as the HTTP route does")
        act.add_argument("ids", nargs="+", type=task_id, metavar="ID", help="task ids")


def _json_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="one JSON document (docs/protocol.md §2)")


def refuse(prog: str, message: str) -> int:
    """Bad input found once running (an unknown id): one line, status 2."""
    print(f"{prog}: {message}", file=sys.stderr)
    return USAGE_ERROR
