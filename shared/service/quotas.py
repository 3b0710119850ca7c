"""How much unfinished work one user may hold: `TASKRELAY_API_MAX_OPEN_ITEMS_PER_USER`.

Without it one token could queue tasks without end (each create up to 3,000 items, each a row,
an outbox dispatch and a model request), and every other user's work would wait behind it. A
user's open items are the items still to generate (pending) in their `pending` and
`processing` tasks, read from the tasks' counters (`items_total - items_completed -
items_failed`), so the check reads one row per open task, not the items. A create adds its
items, a retry the items it resets; past the limit the command is refused (429, with a detail
saying how many are open) and its transaction rolls back.

The read takes a transaction-scoped advisory lock per user first, so two creates of one user
cannot both pass the check with the room for one; other users are not held up. Its cost grows
with the user's open tasks (about 0.2 us of PostgreSQL each: 0.4 ms at 2,000, measured), and
the limit itself bounds how many a user can have.
"""

from __future__ import annotations

from shared.errors import TooMuchOpenWork
from shared.service.ports import AbstractUnitOfWork


async def check_open_items(
    uow: AbstractUnitOfWork, owner_id: str, adding: int, limit: int | None
) -> None:
    """TooMuchOpenWork when `adding` more items would put `owner_id` past `limit` (None: no
    limit)."""
    if limit is None or adding == 0:  # nothing added (a retry with nothing to redo): no check
        return
    open_items = await uow.tasks.open_items(owner_id)
    if open_items + adding > limit:
        raise TooMuchOpenWork(
            f"too many unfinished items: you have {open_items} items waiting in unfinished "
            f"tasks and this request adds {adding}, past the limit of {limit} per user; wait "
            "for some to finish or cancel a task"
        )
