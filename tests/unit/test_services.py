"""The task commands and the job's writes, against the in-memory unit of work (`fakes.py`).

Each test checks what the service leaves behind (task state, items, outbox messages), not
which calls it made, so it fails when the service's logic changes.
"""

from __future__ import annotations

from uuid import UUID

import pytest

from shared.domain import ItemKey, JobDispatch, Notification, Status, TaskState
from shared.domain.records import Lease, PendingItem
from shared.errors import Conflict, InvalidInput, NotFound
from shared.service import NewTask, cancel_task, create_task, retry_task
from shared.service.ports import AbstractUnitOfWork
from shared.service.progress import ItemResult, finish_task, start_task, store_item_result
from tests.unit.fakes import FakeDatabase

OWNER = "alice"
NEW = NewTask("roadmap-1", [("c1", "Loops"), ("c2", "Sets")], ["tutorial", "quiz"])


async def created(db: FakeDatabase) -> UUID:
    async with db() as uow:
        view = await create_task(uow, OWNER, NEW)
        await uow.commit()
    return view.task_id


def task(db: FakeDatabase, task_id: UUID) -> TaskState:
    return db.state.tasks[task_id]


def notifications(db: FakeDatabase) -> list[Notification]:
    return [m for m in db.state.outbox if isinstance(m, Notification)]


def jobs(db: FakeDatabase) -> list[JobDispatch]:
    return [m for m in db.state.outbox if isinstance(m, JobDispatch)]


async def job_lease(uow: AbstractUnitOfWork, task_id: UUID) -> Lease:
    """The task's lease, taken as a job takes it: item results are stored under it."""
    lease = await uow.leases.acquire(task_id, "job-1", 30)
    assert lease is not None
    return lease


async def run_items(db: FakeDatabase, task_id: UUID, failing: set[str]) -> TaskState:
    """Start the task and store every item's result (those of `failing` concepts fail)."""
    async with db() as uow:
        state = await start_task(uow, task(db, task_id))
        lease = await job_lease(uow, task_id)
        item = await uow.items.next_pending(task_id)
        while item is not None:
            failed = item.key.concept_id in failing
            result = ItemResult(error="boom") if failed else ItemResult(content={"text": "x"})
            recorded = await store_item_result(uow, lease, item, result, lease_seconds=30)
            assert recorded is not None
            assert recorded.stored
            state, item = recorded.state, recorded.following
        state = await finish_task(uow, state)
        await uow.commit()
    return state


async def test_create_writes_the_task_its_items_and_one_job_dispatch(db: FakeDatabase) -> None:
    task_id = await created(db)

    state = task(db, task_id)
    assert (state.status, state.owner_id, state.seq) == (Status.PENDING, OWNER, 0)
    items = db.state.items[task_id]
    assert [(i.key.concept_id, i.key.content_type, i.status) for i in items] == [
        ("c1", "tutorial", "pending"),
        ("c1", "quiz", "pending"),
        ("c2", "tutorial", "pending"),
        ("c2", "quiz", "pending"),
    ]
    assert notifications(db) == []  # creating emits no notification: seq stays 0 (§4)
    [job] = jobs(db)
    assert (job.task_id, job.reason, job.items) == (task_id, "create", tuple(i.key for i in items))


async def test_create_without_commit_leaves_nothing(db: FakeDatabase) -> None:
    async with db() as uow:
        await create_task(uow, OWNER, NEW)
    assert db.state.tasks == {}
    assert db.state.outbox == []


async def test_create_refuses_repeated_concepts(db: FakeDatabase) -> None:
    bad = NewTask("r", [("c1", "A"), ("c1", "B")], ["quiz"])
    async with db() as uow:
        with pytest.raises(InvalidInput):
            await create_task(uow, OWNER, bad)


async def test_cancel_sets_the_fields_and_notifies_without_a_dispatch(db: FakeDatabase) -> None:
    task_id = await created(db)
    async with db() as uow:
        view = await cancel_task(uow, OWNER, task_id)
        await uow.commit()

    state = task(db, task_id)
    assert state.status is Status.CANCELLED
    assert state.error_message == "Task cancelled by user"
    assert state.completed_at is not None
    assert (state.seq, view.seq, view.as_dict()["status"]) == (1, 1, "cancelled")
    [note] = notifications(db)
    assert (note.seq, note.step, note.status) == (1, "cancelled", Status.CANCELLED)
    assert len(jobs(db)) == 1  # only the create's dispatch: a cancel dispatches nothing


async def test_cancel_of_another_users_task_is_not_found(db: FakeDatabase) -> None:
    task_id = await created(db)
    async with db() as uow:
        with pytest.raises(NotFound):
            await cancel_task(uow, "mallory", task_id)
    assert task(db, task_id).status is Status.PENDING


async def test_a_finished_task_cannot_be_cancelled(db: FakeDatabase) -> None:
    task_id = await created(db)
    await run_items(db, task_id, failing=set())
    async with db() as uow:
        with pytest.raises(Conflict):
            await cancel_task(uow, OWNER, task_id)


async def test_retry_of_a_partial_failure_resets_only_the_unfinished_items(
    db: FakeDatabase,
) -> None:
    task_id = await created(db)
    finished = await run_items(db, task_id, failing={"c2"})
    assert finished.status is Status.PARTIAL_FAILURE
    assert finished.completed_at is not None
    assert finished.error_message == "2 of 4 content items failed"
    sent_before = len(db.state.outbox)

    async with db() as uow:
        result = await retry_task(uow, OWNER, task_id)
        await uow.commit()

    state = task(db, task_id)
    assert state.status is Status.PROCESSING
    assert (state.completed_at, state.error_message) == (None, None)
    assert state.seq == finished.seq + 1
    assert (result.total_items, result.items_by_type) == (2, {"quiz": 1, "tutorial": 1})
    assert result.task.as_dict()["status"] == "processing"
    note, job = db.state.outbox[sent_before:]
    assert isinstance(note, Notification)
    assert (note.step, note.status, note.seq) == (
        "content_retry_queued",
        Status.PROCESSING,
        state.seq,
    )
    assert note.message == "Retrying 2 failed content items"
    assert note.data == {
        "roadmap_id": "roadmap-1",
        "total_items": 2,
        "items_by_type": {"quiz": 1, "tutorial": 1},
        "recovery_type": "content_retry",
    }
    assert isinstance(job, JobDispatch)
    assert job.reason == "retry"
    assert job.items == (ItemKey("c2", "tutorial"), ItemKey("c2", "quiz"))
    statuses = {(i.key.concept_id, i.key.content_type): i.status for i in db.state.items[task_id]}
    assert statuses == {
        ("c1", "tutorial"): "completed",
        ("c1", "quiz"): "completed",
        ("c2", "tutorial"): "pending",
        ("c2", "quiz"): "pending",
    }


async def test_retry_of_a_cancelled_task_retries_every_item(db: FakeDatabase) -> None:
    task_id = await created(db)
    async with db() as uow:
        await cancel_task(uow, OWNER, task_id)
        await uow.commit()
    async with db() as uow:
        result = await retry_task(uow, OWNER, task_id)
        await uow.commit()
    state = task(db, task_id)
    assert (state.status, state.completed_at, state.error_message) == (
        Status.PROCESSING,
        None,
        None,
    )
    assert result.total_items == 4
    assert jobs(db)[-1].reason == "retry"


@pytest.mark.parametrize("failing", [set(), {"c1", "c2"}])
async def test_retry_is_refused_when_completed_or_pending(
    db: FakeDatabase, failing: set[str]
) -> None:
    task_id = await created(db)
    if not failing:
        await run_items(db, task_id, failing)  # completed: nothing to retry
    sent_before = len(db.state.outbox)
    async with db() as uow:
        with pytest.raises(Conflict):
            await retry_task(uow, OWNER, task_id)
    assert len(db.state.outbox) == sent_before


async def test_an_item_result_is_stored_once_with_counts_over_all_items(db: FakeDatabase) -> None:
    task_id = await created(db)
    async with db() as uow:
        await start_task(uow, task(db, task_id))
        item = await uow.items.next_pending(task_id)
        assert item == PendingItem(ItemKey("c1", "tutorial"), "Loops", 0)
        lease = await job_lease(uow, task_id)
        stored = ItemResult(content="text")
        after = await store_item_result(uow, lease, item, stored, lease_seconds=30)
        again = await store_item_result(uow, lease, item, stored, lease_seconds=30)
        await uow.commit()

    assert after is not None
    assert after.stored
    assert (after.state.seq, after.state.status) == (2, Status.PROCESSING)
    assert after.following == PendingItem(ItemKey("c1", "quiz"), "Loops", 0)
    assert again is not None
    assert not again.stored  # a duplicate job stores nothing
    assert again.state.seq == 2
    stored = db.state.items[task_id][0]
    assert (stored.status, stored.attempts, stored.content) == ("completed", 1, "text")
    started, result = notifications(db)
    assert started.message == "Generating 4 content items"
    assert result.step == "content_item_completed"
    assert result.message == "Generated tutorial for Loops (1/4)"
    assert result.data["item"] == {
        "concept_id": "c1",
        "content_type": "tutorial",
        "status": "completed",
        "error": None,
    }
    counts = {k: result.data[k] for k in ("completed_items", "failed_items", "total_items")}
    assert counts == {"completed_items": 1, "failed_items": 0, "total_items": 4}


async def test_a_failed_item_carries_its_error(db: FakeDatabase) -> None:
    task_id = await created(db)
    async with db() as uow:
        await start_task(uow, task(db, task_id))
        item = await uow.items.next_pending(task_id)
        assert item is not None
        lease = await job_lease(uow, task_id)
        failed = ItemResult(error="no model")
        await store_item_result(uow, lease, item, failed, lease_seconds=30)
        await uow.commit()
    note = notifications(db)[-1]
    assert (note.step, note.data["error"], note.data["failed_items"]) == (
        "content_item_failed",
        "no model",
        1,
    )
    assert db.state.items[task_id][0].error == "no model"


@pytest.mark.parametrize(
    ("failing", "status", "error"),
    [
        (set(), Status.COMPLETED, None),
        ({"c1"}, Status.PARTIAL_FAILURE, "2 of 4 content items failed"),
        ({"c1", "c2"}, Status.FAILED, "All 4 content items failed"),
    ],
)
async def test_finish_takes_its_status_from_the_items(
    db: FakeDatabase, failing: set[str], status: Status, error: str | None
) -> None:
    task_id = await created(db)
    state = await run_items(db, task_id, failing)
    assert (state.status, state.error_message) == (status, error)
    assert task(db, task_id) == state
    last = notifications(db)[-1]
    assert (last.step, last.status, last.seq) == (f"content_generation_{status}", status, 6)
