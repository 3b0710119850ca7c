"""What a content job writes about its task: the start, each item's result, the finish.

Each function writes through the caller's unit of work and the state machine
(`shared.service.transitions`), so a status change, an item result and its notification land in
one transaction with the outbox rows they emit. `shared.service.generation` decides when to call
them (the job loop); the reconciler (`shared.service.recovery`) finishes tasks through
`finish_task` too. Counts in every notification are over ALL of the task's items (protocol §7),
read from the task's counters (`ItemRepository.counts`, or the store's own statement), which the
statements that change item statuses keep exact: no scan of the items per item.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from shared.domain import ItemCounts, ItemKey, JobDispatch, Status, TaskState
from shared.domain.messages import GENERATE_CONTENT
from shared.domain.records import Lease, PendingItem, Stored
from shared.service.ports import AbstractUnitOfWork
from shared.service.transitions import emit_event, transition

RUNNING_STEP = "content_generation_running"
"""A job took a task that waited (a new turn): `data.in_flight` lists the items it started."""
WAITING_STEP = "content_generation_waiting"
"""A job handed its task back unfinished: the task waits for a free worker again."""


@dataclass(frozen=True, slots=True)
class ItemResult:
    """What the generator gave for one item: its content, or the error that failed it."""

    content: Any = None
    error: str | None = None
    usage: dict[str, int] | None = None
    """The provider's token usage (`prompt_tokens`, `completion_tokens`), when reported."""


def progress_data(counts: ItemCounts) -> dict[str, int]:
    """The counts every item notification carries, over ALL of the task's items (§7)."""
    return {
        "completed_items": counts.completed,
        "failed_items": counts.failed,
        "total_items": counts.total,
    }


def keys_data(items: Sequence[PendingItem]) -> list[dict[str, str]]:
    """Items as `data.in_flight` and `data.started` list them: concept and content type."""
    return [item.key.as_dict() for item in items]


async def start_task(
    uow: AbstractUnitOfWork, state: TaskState, in_flight: Sequence[PendingItem] = ()
) -> TaskState:
    """pending -> processing, when a job first takes the task (starting `in_flight`)."""
    counts = await uow.items.counts(state.task_id)
    data = {"roadmap_id": state.roadmap_id, **progress_data(counts)}
    started = await transition(
        uow,
        state,
        Status.PROCESSING,
        step="content_generation_started",
        message=f"Generating {counts.pending} content items",
        data={**data, "in_flight": keys_data(in_flight)} if in_flight else data,
    )
    return started.state


async def resume_turn(
    uow: AbstractUnitOfWork, state: TaskState, in_flight: Sequence[PendingItem]
) -> TaskState:
    """A processing task that waited for a worker has one again: its watchers see work go on."""
    counts = await uow.items.counts(state.task_id)
    change = await emit_event(
        uow,
        state,
        step=RUNNING_STEP,
        message=f"Generating {counts.pending} content items",
        data={
            "roadmap_id": state.roadmap_id,
            "in_flight": keys_data(in_flight),
            **progress_data(counts),
        },
    )
    return change.state


async def hand_back(uow: AbstractUnitOfWork, state: TaskState, rest: Sequence[ItemKey]) -> None:
    """The job leaves the task unfinished (its slice ended, or a shutdown): the rest goes back
    in line as a `resume` job dispatch, and the watchers see the task wait for a worker."""
    counts = await uow.items.counts(state.task_id)
    await emit_event(
        uow,
        state,
        step=WAITING_STEP,
        message="Waiting for a free worker",
        data={
            "roadmap_id": state.roadmap_id,
            "waiting_since": datetime.now(UTC).isoformat(),
            **progress_data(counts),
        },
        job=JobDispatch(GENERATE_CONTENT, state.task_id, tuple(rest), "resume"),
    )


async def store_item_result(
    uow: AbstractUnitOfWork,
    lease: Lease,
    item: PendingItem,
    result: ItemResult,
    *,
    lease_seconds: float,
    started: Sequence[PendingItem] = (),
) -> Stored | None:
    """Under the task row lock, store the result and count the attempt if the item is still
    pending and the lease still carries the job's generation (renewing it), and emit its
    notification (`data.started`: the items the job starts in its place); what the store did,
    with the task's state after the notification, or None if the task is unknown."""
    stored = await uow.items.store_result(
        lease,
        item.key,
        content=result.content,
        error=result.error,
        usage=result.usage,
        now=datetime.now(UTC),
        lease_seconds=lease_seconds,
    )
    if stored is None:
        return None
    if stored.counts is None:
        return stored
    counts, key = stored.counts, item.key
    data: dict[str, Any] = {
        "concept_id": key.concept_id,
        "content_type": key.content_type,
        "item_status": "failed" if result.error is not None else "completed",
        "item": key.result(result.error),
        **progress_data(counts),
    }
    if started:
        data["started"] = keys_data(started)
    if result.error is None:
        step = "content_item_completed"
        done = counts.completed + counts.failed
        message = f"Generated {key.content_type} for {item.concept_title} ({done}/{counts.total})"
    else:
        step, data["error"] = "content_item_failed", result.error
        message = f"Failed to generate {key.content_type} for {item.concept_title}"
    change = await emit_event(uow, stored.state, step=step, message=message, data=data)
    return replace(stored, state=change.state)


async def finish_task(uow: AbstractUnitOfWork, state: TaskState) -> TaskState:
    """processing -> completed, partial_failure or failed, from the items' final statuses."""
    counts = await uow.items.counts(state.task_id)
    data = {"roadmap_id": state.roadmap_id, **progress_data(counts)}
    if counts.failed == 0:
        target, error = Status.COMPLETED, None
        message = f"Generated all {counts.total} content items"
    elif counts.completed == 0:
        target, error = Status.FAILED, f"All {counts.total} content items failed"
        message = error
    else:
        target = Status.PARTIAL_FAILURE
        error = f"{counts.failed} of {counts.total} content items failed"
        message = error
    step = f"content_generation_{target}"
    change = await transition(
        uow, state, target, step=step, message=message, data=data, error_message=error
    )
    return change.state
