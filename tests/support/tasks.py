"""Make and drive tasks for tests through the product's own services: the one fixture module.

A test that needs a task in some state gets it here, and every write goes through the code the
product runs: `create_task` makes it, the state machine (`transition`, `emit_event`) changes it,
the worker's `start_task`, `store_item_result` and `finish_task` (`shared.service.progress`)
start it, record item results and give the final status. So a test breaks when the product
changes, not when a copy of it drifts.

`new_task` works at the database level (integration tests, and e2e tests that watch a task
change); a task made over HTTP, for tests that drive a whole running system, is
`harness.client.create_through_api`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from shared.adapters.postgres import UnitOfWork, UnitOfWorkFactory
from shared.domain import ItemKey, Status, TaskState
from shared.domain.records import Lease, PendingItem
from shared.service import NewTask, create_task, emit_event, transition
from shared.service.progress import ItemResult, finish_task, start_task, store_item_result

FAILED_ITEM = "generator failed"
"""The error an item failed by these helpers carries."""


Concepts = int | Sequence[str | tuple[str, str]]
"""A count (`c000`, `c001`...), or concept ids (titled `Title <id>`), or (id, title) pairs."""


def concepts(given: Concepts) -> list[tuple[str, str]]:
    """(concept_id, title) pairs for `given`."""
    if isinstance(given, int):
        given = [f"c{i:03d}" for i in range(given)]
    return [c if isinstance(c, tuple) else (c, f"Title {c}") for c in given]


async def new_task(
    uow_factory: UnitOfWorkFactory,
    owner: str = "tests",
    ids: Concepts = 3,
    types: Sequence[str] = ("tutorial",),
    roadmap_id: str | None = None,
) -> UUID:
    """A pending task made by `create_task`, as the API makes it (with its job dispatch)."""
    new = NewTask(roadmap_id or f"roadmap-{uuid4().hex[:6]}", concepts(ids), list(types))
    async with uow_factory() as uow:
        view = await create_task(uow, owner, new)
        await uow.commit()
    return view.task_id


async def _locked(uow: UnitOfWork, task_id: UUID) -> TaskState:
    state = await uow.tasks.lock(task_id)
    assert state is not None
    return state


async def start(
    uow_factory: UnitOfWorkFactory, task_id: UUID, holder: str | None = None, lease: float = 30
) -> int:
    """A job's start: with `holder`, it takes the task's lease for `lease` seconds; a pending
    task goes to processing by the worker's own `start_task`."""
    async with uow_factory() as uow:
        state = await _locked(uow, task_id)
        if holder is not None:
            assert await uow.leases.acquire(task_id, holder, lease)
        if state.status is Status.PENDING:
            state = await start_task(uow, state)
        await uow.commit()
    return state.seq


async def pending_keys(uow_factory: UnitOfWorkFactory, task_id: UUID) -> list[ItemKey]:
    """The items not generated yet, in generation order."""
    async with uow_factory() as uow:
        return await uow.items.pending_keys(task_id)


async def store_results(uow_factory: UnitOfWorkFactory, task_id: UUID, status: str, n: int) -> None:
    """The first `n` pending items get `status` (completed or failed), without notifications:
    counts to read, not progress to watch. Stored as a job stores them, under a lease."""
    error = FAILED_ITEM if status == "failed" else None
    async with uow_factory() as uow:
        await _locked(uow, task_id)
        lease = await _job_lease(uow, task_id)
        items = uow.items
        for key in (await items.pending_keys(task_id))[:n]:
            now = datetime.now(UTC)
            stored = await items.store_result(
                lease, key, content="# done", error=error, now=now, lease_seconds=30
            )
            assert stored is not None
            assert stored.counts is not None, f"{key} was not stored"
        await uow.leases.release(lease, keep_recoveries=True)
        await uow.commit()


async def item_result(uow_factory: UnitOfWorkFactory, task_id: UUID, key: ItemKey, ok: bool) -> int:
    """One item's result and its notification in one transaction, by the worker's own
    `store_item_result` (the title is the one `concepts` gives a bare concept id)."""
    item = PendingItem(key, f"Title {key.concept_id}", attempts=0)
    result = ItemResult(content="# done") if ok else ItemResult(error=FAILED_ITEM)
    async with uow_factory() as uow:
        await _locked(uow, task_id)  # as a job does: the task row lock, then the lease
        lease = await _job_lease(uow, task_id)
        recorded = await store_item_result(uow, lease, item, result, lease_seconds=30)
        assert recorded is not None
        assert recorded.stored, f"{key} was not pending"
        await uow.leases.release(lease, keep_recoveries=True)
        await uow.commit()
    return recorded.state.seq


async def _job_lease(uow: UnitOfWork, task_id: UUID) -> Lease:
    """The task's lease for these helpers, taken as a job takes it (given back after use)."""
    lease = await uow.leases.acquire(task_id, "tests-helper", 30)
    assert lease is not None, "a live job holds the task: its lease is not the helpers' to take"
    return lease


async def finish(uow_factory: UnitOfWorkFactory, task_id: UUID) -> int:
    """processing -> the final status the items call for, by the worker's `finish_task`."""
    async with uow_factory() as uow:
        state = await finish_task(uow, await _locked(uow, task_id))
        await uow.commit()
    return state.seq


async def move(
    uow_factory: UnitOfWorkFactory, task_id: UUID, target: Status, **fields: Any
) -> None:
    """Any transition the state machine allows (a cancel, say), with `fields` passed on."""
    async with uow_factory() as uow:
        state = await _locked(uow, task_id)
        await transition(uow, state, target, step=f"test_{target}", message="test", **fields)
        await uow.commit()


async def event(uow_factory: UnitOfWorkFactory, task_id: UUID, data: dict[str, object]) -> int:
    """A notification that keeps the status, carrying `data` (a large one, say)."""
    async with uow_factory() as uow:
        state = await _locked(uow, task_id)
        change = await emit_event(uow, state, step="note", message="note", data=dict(data))
        await uow.commit()
    return change.state.seq


async def partial_failure(
    uow_factory: UnitOfWorkFactory, owner: str, completed: int = 11, failed: int = 10
) -> UUID:
    """A task that ran and ended partial_failure: `completed` items done, `failed` failed."""
    task_id = await new_task(uow_factory, owner, completed + failed)
    await start(uow_factory, task_id)
    await store_results(uow_factory, task_id, "completed", completed)
    await store_results(uow_factory, task_id, "failed", failed)
    await finish(uow_factory, task_id)
    return task_id
