"""Drive a task through its life the way the worker does: through the state machine only.

Tests of the gateway and the page need tasks that change while they watch. These helpers
make those changes with `shared.service` in a unit of work, exactly as the worker would
(lock the row, record the item, emit the notification, commit); the real relay publishes them.
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import select, update

from shared.db import UnitOfWork, UnitOfWorkFactory
from shared.db.tables import content_items
from shared.domain import ItemKey, Status, TaskState
from shared.service import NewTask, create_task, emit_event, transition


async def new_task(
    uows: UnitOfWorkFactory, owner: str, concepts: int = 3, types: tuple[str, ...] = ("quiz",)
) -> UUID:
    new = NewTask("roadmap-ws", [(f"c{i}", f"Concept {i}") for i in range(concepts)], list(types))
    async with uows() as uow:
        view = await create_task(uow, owner, new)
        await uow.commit()
    return UUID(view["task_id"])


async def _locked(uow: UnitOfWork, task_id: UUID) -> TaskState:
    state = await uow.tasks.lock(task_id)
    assert state is not None
    return state


async def start(uows: UnitOfWorkFactory, task_id: UUID) -> int:
    async with uows() as uow:
        state = await _locked(uow, task_id)
        change = await transition(
            uow, state, Status.PROCESSING, step="content_generation", message="Generating content"
        )
        await uow.commit()
    return change.state.seq


async def item_result(uows: UnitOfWorkFactory, task_id: UUID, key: ItemKey, ok: bool) -> int:
    """Record one item as the worker would, with counts over all of the task's items."""
    async with uows() as uow:
        state = await _locked(uow, task_id)
        await uow.connection.execute(
            update(content_items)
            .where(content_items.c.task_id == task_id)
            .where(content_items.c.concept_id == key.concept_id)
            .where(content_items.c.content_type == key.content_type)
            .values(
                status="completed" if ok else "failed",
                attempts=content_items.c.attempts + 1,
                last_error=None if ok else "generator failed",
            )
        )
        counts = await uow.items.counts(task_id)
        change = await emit_event(
            uow,
            state,
            step="content_item_completed" if ok else "content_item_failed",
            message=f"{key.content_type} for {key.concept_id} {'done' if ok else 'failed'}",
            data={
                "concept_id": key.concept_id,
                "content_type": key.content_type,
                "completed_items": counts.completed,
                "failed_items": counts.failed,
                "total_items": counts.total,
            },
        )
        await uow.commit()
    return change.state.seq


async def finish(uows: UnitOfWorkFactory, task_id: UUID) -> int:
    """The final status the counts call for: completed, partial_failure or failed."""
    async with uows() as uow:
        state = await _locked(uow, task_id)
        counts = await uow.items.counts(task_id)
        if counts.failed == 0:
            target, error = Status.COMPLETED, None
        elif counts.completed:
            target, error = Status.PARTIAL_FAILURE, f"{counts.failed} content items failed"
        else:
            target, error = Status.FAILED, "every content item failed"
        change = await transition(
            uow,
            state,
            target,
            step="content_generation_finished",
            message=error or "All content generated",
            error_message=error,
        )
        await uow.commit()
    return change.state.seq


async def pending_keys(uows: UnitOfWorkFactory, task_id: UUID) -> list[ItemKey]:
    """The items not completed yet, in generation order."""
    query = (
        select(content_items.c.concept_id, content_items.c.content_type)
        .where(content_items.c.task_id == task_id, content_items.c.status != "completed")
        .order_by(content_items.c.position)
    )
    async with uows() as uow:
        return [ItemKey(*row) for row in await uow.connection.execute(query)]


async def event(uows: UnitOfWorkFactory, task_id: UUID, data: dict[str, object]) -> int:
    """A notification that keeps the status, carrying `data` (a large one, say)."""
    async with uows() as uow:
        state = await _locked(uow, task_id)
        change = await emit_event(uow, state, step="note", message="note", data=dict(data))
        await uow.commit()
    return change.state.seq
