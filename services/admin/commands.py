"""What each `taskrelay admin` subcommand does, and its exit status (docs/protocol.md §2).

0 when done; 1 when PostgreSQL or RabbitMQ cannot be reached (DependencyUnavailable, printed by
`taskrelay` in one line naming it); 2 for bad input, in one line: an unknown id, a row that is
not parked, a task the state machine will not move, a drop not confirmed. Every change is
logged (`admin_*` lines, with what changed) once it is committed or confirmed by the broker.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from services.admin import outbox, tasks
from services.admin.dead_letters import DeadLetterQueue
from services.admin.parser import refuse
from services.admin.render import confirmed, print_json, print_table
from shared.config.settings import Settings
from shared.errors import DomainError
from shared.observability.logging import configure_logging, get_logger

log = get_logger(__name__)

Handler = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int]]


def run_admin(args: argparse.Namespace, settings: Settings) -> int:
    configure_logging("admin", settings.logging)
    handlers: dict[str, Handler] = {
        "outbox": outbox.run,
        "dead-letters": dead_letters,
        "tasks": tasks.run,
    }
    prog = f"taskrelay admin {args.admin_command}"
    try:
        return asyncio.run(handlers[args.admin_command](args, settings))
    except DomainError as exc:  # an unknown id, a row not parked: nothing was changed for it
        return refuse(prog, str(exc))


async def dead_letters(args: argparse.Namespace, settings: Settings) -> int:
    queue = DeadLetterQueue(settings.broker.url)
    if args.action == "replay":
        replayed = await queue.replay()
        for letter in replayed:
            log.info("admin_dead_letter_replayed", **letter.as_dict())
        print(f"sent {len(replayed)} dead-lettered job message(s) back to the jobs queue")
        return 0
    if args.action == "drop":
        count = await queue.count()
        if count == 0:
            print("no dead-lettered job messages")
            return 0
        question = f"drop {count} dead-lettered job message(s)? This cannot be undone."
        if not args.yes and not confirmed(question):
            return refuse("taskrelay admin dead-letters drop", "not confirmed: nothing dropped")
        dropped = await queue.drop(count)
        for letter in dropped:
            log.info("admin_dead_letter_dropped", **letter.as_dict())
        print(f"dropped {len(dropped)} dead-lettered job message(s)")
        return 0
    letters = await queue.letters(args.limit)
    if args.json:
        print_json({"messages": [letter.as_dict() for letter in letters]})
        return 0
    print_table(
        ["MESSAGE_ID", "ROUTING_KEY", "REASON", "DEATHS", "TASK_ID"],
        [[m.message_id, m.routing_key, m.reason, m.deaths, m.task_id] for m in letters],
        empty="no dead-lettered job messages",
    )
    return 0
