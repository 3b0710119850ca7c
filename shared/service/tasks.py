"""The task commands behind the HTTP API: create, view, cancel, retry.

Each writes through the caller's unit of work and returns what the caller answers with (the
task's `TaskView`, which the task repository reads); the caller commits, then answers, so no
answer ever describes an uncommitted change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from shared.domain import CONTENT_TYPES, ItemKey, JobDispatch, Kind, Status, TaskState, TaskView
from shared.domain.messages import GENERATE_CONTENT
from shared.domain.state_machine import CANCELLED_MESSAGE, rule_for
from shared.errors import InvalidInput, NotFound, TooMuchOpenWork
from shared.observability.logging import get_logger
from shared.service.ports import AbstractUnitOfWork
from shared.service.transitions import transition

log = get_logger(__name__)

RETRY_STEP = "content_retry_queued"
RECOVERY_TYPE = "content_retry"


@dataclass(frozen=True, slots=True)
class NewTask:
    roadmap_id: str
    concepts: list[tuple[str, str]]
    """(concept_id, title) pairs, in generation order."""
    content_types: list[str]


@dataclass(frozen=True, slots=True)
class RetryResult:
    task: TaskView
    total_items: int
    items_by_type: dict[str, int]
    recovery_type: str

    def as_dict(self) -> dict[str, Any]:
        """The retry's answer (docs/protocol.md §6): the task view and what was queued again."""
        return {
            "task": self.task.as_dict(),
            "total_items": self.total_items,
            "items_by_type": self.items_by_type,
            "recovery_type": self.recovery_type,
        }


async def create_task(
    uow: AbstractUnitOfWork, owner_id: str, new: NewTask, *, max_open_items: int | None = None
) -> TaskView:
    """The task, its items and the generation job dispatch, in one transaction; refused past
    the owner's `max_open_items` (`check_open_items`)."""
    _validate(new)
    adding = len(new.concepts) * len(new.content_types)
    await check_open_items(uow, owner_id, adding, max_open_items)
    now = datetime.now(UTC)
    state = TaskState(uuid4(), new.roadmap_id, owner_id, Status.PENDING, "queued", None, None, 0)
    items = [
        (ItemKey(concept_id, content_type), title)
        for concept_id, title in new.concepts
        for content_type in new.content_types
    ]
    await uow.tasks.add(state, now)
    await uow.items.add_many(state.task_id, items, now)
    job = JobDispatch(GENERATE_CONTENT, state.task_id, tuple(k for k, _ in items), "create")
    await uow.outbox.add_job(job)
    _, view = await _view(uow, state.task_id)
    uow.on_commit(
        lambda: log.info("task_created", task_id=str(state.task_id), total_items=len(items))
    )
    return view


async def get_task_view(uow: AbstractUnitOfWork, owner_id: str, task_id: UUID) -> TaskView:
    owner, view = await _view(uow, task_id)
    if owner != owner_id:
        raise NotFound(f"task {task_id} not found")
    return view


async def cancel_task(uow: AbstractUnitOfWork, owner_id: str, task_id: UUID) -> TaskView:
    state = await _lock_owned(uow, owner_id, task_id)
    await transition(
        uow,
        state,
        Status.CANCELLED,
        step="cancelled",
        message=CANCELLED_MESSAGE,
        data={"roadmap_id": state.roadmap_id},
        kind=Kind.CANCEL,
    )
    _, view = await _view(uow, task_id)
    return view


async def retry_task(
    uow: AbstractUnitOfWork, owner_id: str, task_id: UUID, *, max_open_items: int | None = None
) -> RetryResult:
    """Reset every item not completed to pending, go back to processing, dispatch the job;
    refused past the owner's `max_open_items` (`check_open_items`).

    A task with nothing left to generate (a cancel that lost the race with its last items) is
    retried all the same: its job finds nothing pending and finishes it `completed`."""
    state = await _lock_owned(uow, owner_id, task_id)
    rule_for(state.status, Status.PROCESSING, Kind.RETRY)  # refuses early, before reading items
    keys = await uow.items.reset_unfinished(task_id, datetime.now(UTC))
    await check_open_items(uow, owner_id, len(keys), max_open_items)
    per_type: dict[str, int] = {}
    for key in keys:
        per_type[key.content_type] = per_type.get(key.content_type, 0) + 1
    by_type = dict(sorted(per_type.items()))
    data = {
        "roadmap_id": state.roadmap_id,
        "total_items": len(keys),
        "items_by_type": by_type,
        "recovery_type": RECOVERY_TYPE,
    }
    await transition(
        uow,
        state,
        Status.PROCESSING,
        step=RETRY_STEP,
        message=f"Retrying {len(keys)} failed content items",
        data=data,
        kind=Kind.RETRY,
        job=JobDispatch(GENERATE_CONTENT, task_id, tuple(keys), "retry"),
    )
    # Logged once committed by `transition` (`task_status_updated`, step content_retry_queued):
    # a second line for the same retry cost ~25 us of the API's ~0.8 ms CPU per retry.
    _, view = await _view(uow, task_id)
    return RetryResult(view, len(keys), by_type, RECOVERY_TYPE)


async def require_owner(uow: AbstractUnitOfWork, owner_id: str, task_id: UUID) -> None:
    """NotFound unless the task exists and is `owner_id`'s; takes no lock."""
    if await uow.tasks.owner(task_id) != owner_id:
        raise NotFound(f"task {task_id} not found")


async def _lock_owned(uow: AbstractUnitOfWork, owner_id: str, task_id: UUID) -> TaskState:
    """The task's state under its row lock, taken only if the caller owns it (one round trip):
    another user who learns a task id cannot hold its lock against the worker."""
    state = await uow.tasks.lock_owned(task_id, owner_id)
    if state is None:
        raise NotFound(f"task {task_id} not found")
    return state


async def _view(uow: AbstractUnitOfWork, task_id: UUID) -> tuple[str, TaskView]:
    """(owner, the task view of docs/protocol.md §6): the view names no owner."""
    found = await uow.tasks.view(task_id)
    if found is None:
        raise NotFound(f"task {task_id} not found")
    return found


def _validate(new: NewTask) -> None:
    if not 1 <= len(new.roadmap_id) <= 200:
        raise InvalidInput("roadmap_id must be 1 to 200 characters")
    if not 1 <= len(new.concepts) <= 1000:
        raise InvalidInput("concepts must hold 1 to 1,000 concepts")
    ids = [c for c, _ in new.concepts]
    if len(set(ids)) != len(ids):
        raise InvalidInput("concept_id values must be unique")
    if not new.content_types:
        raise InvalidInput("content_types must not be empty")
    unknown = sorted(set(new.content_types) - set(CONTENT_TYPES))
    if unknown:
        raise InvalidInput(f"unknown content types: {', '.join(unknown)}")
    if len(set(new.content_types)) != len(new.content_types):
        raise InvalidInput("content_types must not repeat")


async def check_open_items(
    uow: AbstractUnitOfWork, owner_id: str, adding: int, limit: int | None
) -> None:
    """TooMuchOpenWork when `adding` more items would put `owner_id` past `limit` (None: no
    limit): how much unfinished work one user may hold (`TASKRELAY_API_MAX_OPEN_ITEMS_PER_USER`).

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
    if limit is None or adding == 0:  # nothing added (a retry with nothing to redo): no check
        return
    open_items = await uow.tasks.open_items(owner_id)
    if open_items + adding > limit:
        raise TooMuchOpenWork(
            f"too many unfinished items: you have {open_items} items waiting in unfinished "
            f"tasks and this request adds {adding}, past the limit of {limit} per user; wait "
            "for some to finish or cancel a task"
        )
