"""The task services against the real PostgreSQL: one transaction holds the status change,
its notification and its job dispatch, or none of them exists."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
import pytest

from harness.wait import wait_until
from shared.adapters.postgres import UnitOfWorkFactory
from shared.adapters.postgres.idempotency import lock_name
from shared.adapters.postgres.outbox import OutboxWriter
from shared.config.settings import Settings
from shared.domain import JobDispatch, Notification, Status, TaskState
from shared.errors import Conflict, IdempotencyConflict, NotFound, TooMuchOpenWork
from shared.service import NewTask, cancel_task, create_task, retry_task
from shared.service.idempotency import claim
from tests.support import tasks


class InjectedFailure(RuntimeError):
    pass


class FailingJobOutbox(OutboxWriter):
    """Fails right after a change with a job dispatch was written: the status update, its
    notification and the dispatch are all in the transaction when it fails."""

    async def emit(
        self, state: TaskState, now: datetime, notification: Notification, *jobs: JobDispatch
    ) -> None:
        await super().emit(state, now, notification, *jobs)
        if jobs:
            raise InjectedFailure("failed after the job dispatch was written")


def owner() -> str:
    return f"user-{uuid.uuid4().hex[:8]}"


async def snapshot(settings: Settings, task_id: UUID) -> dict[str, Any]:
    """What a separate connection sees: the task row and its outbox rows."""
    conn = await asyncpg.connect(settings.database.asyncpg_dsn)
    try:
        task = await conn.fetchrow("SELECT * FROM roadmap_tasks WHERE task_id = $1", task_id)
        rows = await conn.fetch(
            "SELECT kind, routing_key, payload::text AS payload FROM outbox "
            "WHERE task_id = $1 ORDER BY id",
            task_id,
        )
        items = await conn.fetch(
            "SELECT status, count(*) AS n FROM content_items WHERE task_id = $1 GROUP BY status",
            task_id,
        )
    finally:
        await conn.close()
    return {"task": dict(task), "outbox": [dict(r) for r in rows], "items": dict(items)}


async def retry_and_commit(factory: UnitOfWorkFactory, user: str, task_id: UUID) -> None:
    async with factory() as uow:
        await retry_task(uow, user, task_id)
        await uow.commit()


async def test_retry_writes_status_notification_and_job_together(
    uow_factory: UnitOfWorkFactory, settings: Settings
) -> None:
    user = owner()
    task_id = await tasks.partial_failure(uow_factory, user, completed=11, failed=10)
    before = await snapshot(settings, task_id)
    assert before["task"]["completed_at"] is not None

    async with uow_factory() as uow:
        result = await retry_task(uow, user, task_id)
        await uow.commit()

    after = await snapshot(settings, task_id)
    task = after["task"]
    assert (task["status"], task["completed_at"], task["error_message"]) == (
        "processing",
        None,
        None,
    )
    assert task["current_step"] == "content_retry_queued"
    assert task["seq"] == before["task"]["seq"] + 1
    new_rows = after["outbox"][len(before["outbox"]) :]
    assert [r["kind"] for r in new_rows] == ["notification", "job"]
    assert f'"seq": {task["seq"]}' in new_rows[0]["payload"]
    assert "Retrying 10 failed content items" in new_rows[0]["payload"]
    assert new_rows[1]["routing_key"] == "job.generate_content"
    assert after["items"] == {"completed": 11, "pending": 10}
    assert result.total_items == 10
    assert result.items_by_type == {"tutorial": 10}
    assert result.recovery_type == "content_retry"


async def test_failure_after_status_update_leaves_nothing(
    uow_factory: UnitOfWorkFactory, settings: Settings
) -> None:
    user = owner()
    task_id = await tasks.partial_failure(uow_factory, user, completed=2, failed=3)
    before = await snapshot(settings, task_id)

    failing = UnitOfWorkFactory(uow_factory.database, outbox_class=FailingJobOutbox)
    with pytest.raises(InjectedFailure):
        await retry_and_commit(failing, user, task_id)

    assert await snapshot(settings, task_id) == before


@pytest.mark.parametrize("status", [Status.PENDING, Status.PROCESSING, Status.COMPLETED])
async def test_retry_refused_changes_nothing(
    uow_factory: UnitOfWorkFactory, settings: Settings, status: Status
) -> None:
    user = owner()
    task_id = await tasks.new_task(uow_factory, user, 2)
    if status is not Status.PENDING:
        await tasks.move(uow_factory, task_id, Status.PROCESSING)
    if status is Status.COMPLETED:
        await tasks.store_results(uow_factory, task_id, "completed", 2)
        await tasks.move(uow_factory, task_id, Status.COMPLETED)
    before = await snapshot(settings, task_id)
    with pytest.raises(Conflict):
        async with uow_factory() as uow:
            await retry_task(uow, user, task_id)
    assert await snapshot(settings, task_id) == before


async def test_retry_with_nothing_left_dispatches_the_finish(
    uow_factory: UnitOfWorkFactory, settings: Settings
) -> None:
    """A cancel that lost the race with its last items: the retry is taken (0 items), the task
    is processing and waits for a worker, whose job will finish it (docs/protocol.md §6)."""
    user = owner()
    task_id = await tasks.new_task(uow_factory, user, 2)
    await tasks.move(uow_factory, task_id, Status.PROCESSING)
    await tasks.store_results(uow_factory, task_id, "completed", 2)
    await tasks.move(uow_factory, task_id, Status.CANCELLED)
    async with uow_factory() as uow:
        result = await retry_task(uow, user, task_id)
        await uow.commit()
    assert (result.total_items, result.items_by_type) == (0, {})
    answered = result.task.as_dict()
    assert answered["status"] == "processing"
    assert answered["waiting_since"] is not None
    assert answered["completed_at"] is None
    assert answered["error_message"] is None


async def test_cancel_then_retry_clears_the_cancel(
    uow_factory: UnitOfWorkFactory, settings: Settings
) -> None:
    """The seed's scenario: a cancelled task retried shows processing, with no stale fields."""
    user = owner()
    task_id = await tasks.new_task(uow_factory, user, 21)
    async with uow_factory() as uow:
        view = (await cancel_task(uow, user, task_id)).as_dict()
        await uow.commit()
    assert view["status"] == "cancelled"
    assert view["error_message"] == "Task cancelled by user"
    assert view["completed_at"] is not None

    async with uow_factory() as uow:
        result = await retry_task(uow, user, task_id)
        await uow.commit()
    task = (await snapshot(settings, task_id))["task"]
    assert (task["status"], task["completed_at"], task["error_message"]) == (
        "processing",
        None,
        None,
    )
    assert result.total_items == 21


async def test_another_users_task_is_not_found(uow_factory: UnitOfWorkFactory) -> None:
    task_id = await tasks.partial_failure(uow_factory, owner(), completed=1, failed=1)
    with pytest.raises(NotFound):
        async with uow_factory() as uow:
            await retry_task(uow, owner(), task_id)


async def test_two_creates_of_one_user_cannot_share_the_room_for_one(
    uow_factory: UnitOfWorkFactory, settings: Settings
) -> None:
    """Limit 10, two 6-item creates at once: the first holds its transaction open until the
    second has either finished or is waiting for the per-user lock; exactly one passes
    (without the lock both read 0 open items and both are created)."""
    user = owner()
    six = NewTask("r", [(f"c{i}", f"C{i}") for i in range(2)], ["tutorial", "resources", "quiz"])
    first_in, second_done = asyncio.Event(), asyncio.Event()
    watcher = await asyncpg.connect(settings.database.asyncpg_dsn)

    async def second_blocked_or_done() -> bool:
        waiting = await watcher.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        return second_done.is_set() or waiting > 0

    async def create(first: bool) -> str:
        async with uow_factory() as uow:
            try:
                await create_task(uow, user, six, max_open_items=10)
            except TooMuchOpenWork:
                return "refused"
            finally:
                if not first:
                    second_done.set()
            if first:
                first_in.set()
                await wait_until(second_blocked_or_done, within=10, what="the second create")
            await uow.commit()
            return "created"

    try:
        first = asyncio.create_task(create(True))
        await first_in.wait()
        outcomes = await asyncio.gather(first, create(False))
    finally:
        await watcher.close()
    assert sorted(outcomes) == ["created", "refused"]


async def test_an_idempotency_key_is_locked_per_user_whatever_their_ids_hold(
    uow_factory: UnitOfWorkFactory,
) -> None:
    """User `a:b` holds key `c` (its request still runs): user `a`'s key `b:c` is another key
    of another user, not 409 (the old lock name `idempotency:a:b:c` was the same for both)."""
    base = owner()
    async with uow_factory() as holder:
        assert await claim(holder, f"{base}:b", "c", "f1", 60) is None
        async with uow_factory() as other:
            assert await claim(other, base, "b:c", "f2", 60) is None
        async with uow_factory() as repeat:  # the control: the same user and key is held
            with pytest.raises(IdempotencyConflict):
                await claim(repeat, f"{base}:b", "c", "f1", 60)


def test_lock_names_of_different_pairs_differ() -> None:
    pairs = [("a:b", "c"), ("a", "b:c"), ("a", ":b:c"), ("a:b:", "c"), ("", "a:b:c")]
    assert len({lock_name(user, key) for user, key in pairs}) == len(pairs)
