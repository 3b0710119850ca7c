"""One item with its content and usage (`get_item`, protocol §6), on the in-memory unit of work:
what a completed item shows, what a failed or pending one shows, and 404 for anyone else."""

from __future__ import annotations

from uuid import UUID, uuid4

import pytest

from shared.errors import NotFound
from shared.service import create_task, get_item
from shared.service.progress import ItemResult, start_task, store_item_result
from tests.unit.fakes import FakeDatabase
from tests.unit.test_services import NEW, OWNER, job_lease, task

USAGE = {"prompt_tokens": 11, "completion_tokens": 22}


async def generated(db: FakeDatabase) -> UUID:
    """A task whose first item completed with usage and whose second failed."""
    async with db() as uow:
        task_id = (await create_task(uow, OWNER, NEW)).task_id
        await uow.commit()
    async with db() as uow:
        await start_task(uow, task(db, task_id))
        lease = await job_lease(uow, task_id)
        for result in (ItemResult(content="# Loops", usage=USAGE), ItemResult(error="boom")):
            item = await uow.items.next_pending(task_id)
            assert item is not None
            await store_item_result(uow, lease, item, result, lease_seconds=30)
        await uow.commit()
    return task_id


async def test_a_completed_item_shows_its_content_and_usage(db: FakeDatabase) -> None:
    task_id = await generated(db)
    async with db() as uow:
        done = await get_item(uow, OWNER, task_id, "c1", "tutorial")
        failed = await get_item(uow, OWNER, task_id, "c1", "quiz")
        pending = await get_item(uow, OWNER, task_id, "c2", "quiz")
    assert (done["status"], done["content"], done["usage"], done["attempts"]) == (
        "completed",
        "# Loops",
        USAGE,
        1,
    )
    assert (failed["status"], failed["content"], failed["usage"]) == ("failed", None, None)
    assert failed["error"] == "boom"
    assert (pending["status"], pending["content"], pending["usage"]) == ("pending", None, None)
    assert set(done) == {
        "concept_id", "title", "content_type", "status", "attempts", "error", "updated_at",
        "content", "usage",
    }  # fmt: skip


async def test_another_users_task_or_an_unknown_item_is_not_found(db: FakeDatabase) -> None:
    task_id = await generated(db)
    async with db() as uow:
        for owner, task, concept, content_type in [
            ("mallory", task_id, "c1", "tutorial"),
            (OWNER, task_id, "c9", "tutorial"),
            (OWNER, task_id, "c1", "poem"),
            (OWNER, uuid4(), "c1", "tutorial"),
            (OWNER, task_id, "c1\x00", "tutorial"),
            (OWNER, task_id, "c1", "\udc80"),
        ]:
            with pytest.raises(NotFound):
                await get_item(uow, owner, task, concept, content_type)
