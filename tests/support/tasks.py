"""Bring tasks into a given state through the real services and the state machine.

Item results are written with plain SQL (they are not task statuses); every task status change
goes through `shared.service.transitions.transition`, as in production.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from sqlalchemy import text

from shared.db import UnitOfWorkFactory
from shared.domain import Status
from shared.service import NewTask, create_task, transition


def concepts(n: int, prefix: str = "c") -> list[tuple[str, str]]:
    return [(f"{prefix}{i:03d}", f"Concept {i}") for i in range(n)]


async def new_task(
    uow_factory: UnitOfWorkFactory,
    owner: str,
    n_concepts: int = 3,
    content_types: list[str] | None = None,
) -> UUID:
    async with uow_factory() as uow:
        view = await create_task(
            uow, owner, NewTask("roadmap-1", concepts(n_concepts), content_types or ["tutorial"])
        )
        await uow.commit()
    return UUID(view["task_id"])


async def set_items(uow_factory: UnitOfWorkFactory, task_id: UUID, status: str, n: int) -> None:
    """Give the first `n` pending items of the task `status` (completed or failed)."""
    async with uow_factory() as uow:
        await uow.connection.execute(
            text(
                "UPDATE content_items SET status = :s, attempts = attempts + 1 "
                "WHERE (task_id, concept_id, content_type) IN (SELECT task_id, concept_id, "
                "content_type FROM content_items WHERE task_id = :t AND status = 'pending' "
                "ORDER BY position LIMIT :n)"
            ),
            {"s": status, "t": task_id, "n": n},
        )
        await uow.commit()


async def move(
    uow_factory: UnitOfWorkFactory, task_id: UUID, target: Status, **fields: Any
) -> None:
    async with uow_factory() as uow:
        state = await uow.tasks.lock(task_id)
        assert state is not None
        await transition(uow, state, target, step=f"test_{target}", message="test", **fields)
        await uow.commit()


async def partial_failure(
    uow_factory: UnitOfWorkFactory, owner: str, completed: int = 11, failed: int = 10
) -> UUID:
    """A task that ran and ended partial_failure: `completed` items done, `failed` failed."""
    task_id = await new_task(uow_factory, owner, completed + failed)
    await move(uow_factory, task_id, Status.PROCESSING)
    await set_items(uow_factory, task_id, "completed", completed)
    await set_items(uow_factory, task_id, "failed", failed)
    error = f"{failed} of {completed + failed} content items failed"
    await move(uow_factory, task_id, Status.PARTIAL_FAILURE, error_message=error)
    return task_id
