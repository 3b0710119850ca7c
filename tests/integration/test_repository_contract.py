"""The repository contract, part one: tasks, items and the outbox writer, as a service sees them.

Every test runs twice through `uows` (`conftest.py`): on the fake unit of work of the unit tests
and on the real one on PostgreSQL, with the same assertions, so the fake the unit tests trust
cannot drift from the SQL. Tasks are made by the product's own `create_task`. Instants the two
clocks give differently (`created_at`, `updated_at`) are left out; everything else is compared.
Part two (`test_repository_contract_work.py`): leases, turns, the inbox, idempotency.
"""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID, uuid4

from shared.domain import ItemCounts, ItemKey, ItemPage, JobDispatch, Status, TaskFilter
from shared.domain.messages import GENERATE_CONTENT
from shared.domain.records import Lease
from shared.service import NewTask, cancel_task, create_task
from shared.service.ports import AbstractUnitOfWorkFactory

KEYS = [ItemKey("c1", "quiz"), ItemKey("c1", "tutorial"), ItemKey("c2", "quiz")]


def someone() -> str:
    """A user of one test alone: the real database outlives the test."""
    return f"user-{uuid4().hex[:8]}"


async def new_task(
    uows: AbstractUnitOfWorkFactory,
    owner: str,
    concepts: int = 2,
    types: tuple[str, ...] = ("quiz", "tutorial"),
) -> UUID:
    """A pending task made as the API makes it: concepts c1, c2... (titled T1, T2...), each in
    every one of `types`."""
    new = NewTask("roadmap", [(f"c{i}", f"T{i}") for i in range(1, concepts + 1)], list(types))
    async with uows() as uow:
        task_id = (await create_task(uow, owner, new)).task_id
        await uow.commit()
    return task_id


async def test_a_task_is_found_by_id_and_owner(uows: AbstractUnitOfWorkFactory) -> None:
    owner = someone()
    task_id = await new_task(uows, owner)
    async with uows() as uow:
        assert await uow.tasks.exists(task_id)
        assert not await uow.tasks.exists(uuid4())
        assert await uow.tasks.owner(task_id) == owner
        assert await uow.tasks.owner(uuid4()) is None
        state = await uow.tasks.lock(task_id)
        assert state is not None
        assert (state.owner_id, state.status, state.seq, state.current_step) == (
            owner,
            Status.PENDING,
            0,
            "queued",
        )
        assert await uow.tasks.lock(uuid4()) is None
        assert await uow.tasks.lock_owned(task_id, owner) == state
        assert await uow.tasks.lock_owned(task_id, someone()) is None


async def test_the_view_counts_the_items_by_type_and_names_the_owner_beside_it(
    uows: AbstractUnitOfWorkFactory,
) -> None:
    owner = someone()
    task_id = await new_task(uows, owner)
    async with uows() as uow:
        found = await uow.tasks.view(task_id)
        assert await uow.tasks.view(uuid4()) is None
    assert found is not None
    who, view = found
    assert who == owner
    shown = view.as_dict()
    del shown["created_at"], shown["updated_at"]
    assert shown.pop("waiting_since") is not None  # its dispatch is written: it waits
    assert shown == {
        "task_id": str(task_id),
        "roadmap_id": "roadmap",
        "status": "pending",
        "current_step": "queued",
        "error_message": None,
        "completed_at": None,
        "seq": 0,
        "last_message": None,
        "items": {
            "total": 4,
            "completed": 0,
            "failed": 0,
            "pending": 4,
            "by_type": {
                "quiz": {"total": 2, "completed": 0, "failed": 0, "pending": 2},
                "tutorial": {"total": 2, "completed": 0, "failed": 0, "pending": 2},
            },
        },
    }


async def test_a_row_another_unit_of_work_locked_is_skipped_not_waited_for(
    uows: AbstractUnitOfWorkFactory,
) -> None:
    task_id = await new_task(uows, someone())
    async with uows() as holder:
        assert await holder.tasks.lock(task_id) is not None
        async with uows() as other:
            assert await other.tasks.lock_unless_busy(task_id) is None
    async with uows() as later:
        assert await later.tasks.lock_unless_busy(task_id) is not None


async def test_open_items_and_the_overview_cover_the_owner_s_unfinished_tasks(
    uows: AbstractUnitOfWorkFactory,
) -> None:
    owner = someone()
    first = await new_task(uows, owner)
    second = await new_task(uows, owner, concepts=3, types=("quiz",))
    async with uows() as uow:
        await cancel_task(uow, owner, second)
        await uow.commit()
    async with uows() as uow:
        assert await uow.tasks.open_items(owner) == 4  # the cancelled task's items do not count
        assert await uow.tasks.open_items(someone()) == 0
        listed = await uow.tasks.overview(TaskFilter(owner_id=owner))
        cancelled = await uow.tasks.overview(TaskFilter((Status.CANCELLED,), owner_id=owner))
        old = await uow.tasks.overview(TaskFilter(owner_id=owner, older_than_seconds=3600))
    assert [(s.task_id, s.status, s.items_total, s.items_completed) for s in listed] == [
        (first, "pending", 4, 0)
    ]
    assert [(s.task_id, s.items_total, s.recoveries, s.error_message) for s in cancelled] == [
        (second, 3, 0, "Task cancelled by user")
    ]
    assert old == []


async def test_items_come_in_generation_order_and_count_from_the_counters(
    uows: AbstractUnitOfWorkFactory,
) -> None:
    task_id = await new_task(uows, someone())
    async with uows() as uow:
        pending = await uow.items.pending(task_id)
        first = await uow.items.next_pending(task_id)
        keys = await uow.items.pending_keys(task_id)
        counts = await uow.items.counts(task_id)
        unknown = await uow.items.counts(uuid4())
    assert [p.key for p in pending] == [*KEYS, ItemKey("c2", "tutorial")]
    assert [(p.concept_title, p.attempts) for p in pending] == [("T1", 0)] * 2 + [("T2", 0)] * 2
    assert first == pending[0]
    assert keys == [p.key for p in pending]
    assert counts == ItemCounts(4, 0, 0, 4)  # no by_type: the view reads those
    assert unknown == ItemCounts()


async def store(
    uows: AbstractUnitOfWorkFactory, lease: Lease, key: ItemKey, error: str | None = None
) -> tuple[bool, bool, ItemCounts | None, ItemKey | None]:
    """(stored, fenced out, counts after, the next pending item) of one result, committed."""
    async with uows() as uow:
        stored = await uow.items.store_result(
            lease,
            key,
            content=None if error else {"text": key.concept_id},
            error=error,
            now=datetime.now(UTC),
            lease_seconds=30,
            usage=None if error else {"prompt_tokens": 3, "completion_tokens": 5},
        )
        await uow.commit()
    assert stored is not None
    following = stored.following.key if stored.following is not None else None
    return stored.stored, stored.fenced_out, stored.counts, following


async def leased(uows: AbstractUnitOfWorkFactory, task_id: UUID) -> Lease:
    async with uows() as uow:
        lease = await uow.leases.acquire(task_id, "job-1", 30)
        await uow.commit()
    assert lease is not None
    return lease


async def test_a_result_is_stored_once_on_a_pending_item_under_the_lease(
    uows: AbstractUnitOfWorkFactory,
) -> None:
    task_id = await new_task(uows, someone())
    lease = await leased(uows, task_id)
    c1_quiz, c1_tutorial, c2_quiz = KEYS

    assert await store(uows, lease, c1_quiz) == (True, False, ItemCounts(4, 1, 0, 3), c1_tutorial)
    assert await store(uows, lease, c1_quiz) == (False, False, None, c1_tutorial)  # a duplicate
    failed = await store(uows, lease, c1_tutorial, error="boom")
    assert failed == (True, False, ItemCounts(4, 1, 1, 2), c2_quiz)
    stale = Lease(task_id, "job-1", lease.generation + 1)
    assert await store(uows, stale, c2_quiz) == (False, True, None, None)  # fenced out

    async with uows() as uow:
        done = await uow.items.one(task_id, c1_quiz)
        bad = await uow.items.one(task_id, c1_tutorial)
        assert await uow.items.one(task_id, ItemKey("c9", "quiz")) is None
        assert await uow.items.one(uuid4(), c1_quiz) is None
        nowhere = await uow.items.store_result(
            Lease(uuid4(), "job-1", 1), c1_quiz, content="x", error=None, now=datetime.now(UTC),
            lease_seconds=30,
        )  # fmt: skip
    assert nowhere is None
    assert done is not None
    assert bad is not None
    assert (done.row.status, done.row.attempts, done.content, done.usage) == (
        "completed",
        1,
        {"text": "c1"},
        {"prompt_tokens": 3, "completion_tokens": 5},
    )
    assert (bad.row.status, bad.row.error, bad.content, bad.usage) == ("failed", "boom", None, None)


async def test_a_page_lists_items_after_a_position_with_the_task_s_owner_and_seq(
    uows: AbstractUnitOfWorkFactory,
) -> None:
    owner = someone()
    task_id = await new_task(uows, owner)
    lease = await leased(uows, task_id)
    await store(uows, lease, KEYS[1], error="boom")
    async with uows() as uow:
        first = await uow.items.page(task_id, -1, 2, None)
        rest = await uow.items.page(task_id, 1, 10, None)
        failed = await uow.items.page(task_id, -1, 10, "failed")
        beyond = await uow.items.page(task_id, 3, 10, None)
        assert await uow.items.page(uuid4(), -1, 10, None) is None

    def rows(page: ItemPage | None) -> list[tuple[int, str, str, str, str, int, str | None]]:
        assert page is not None
        return [
            (r.position, r.concept_id, r.title, r.content_type, r.status, r.attempts, r.error)
            for r in page.items
        ]

    assert first is not None
    assert (first.owner_id, first.seq) == (owner, 0)
    assert rows(first) == [
        (0, "c1", "T1", "quiz", "pending", 0, None),
        (1, "c1", "T1", "tutorial", "failed", 1, "boom"),
    ]
    assert [r[0] for r in rows(rest)] == [2, 3]
    assert [r[0] for r in rows(failed)] == [1]
    assert rows(beyond) == []


async def test_a_reset_makes_every_unfinished_item_pending_again(
    uows: AbstractUnitOfWorkFactory,
) -> None:
    task_id = await new_task(uows, someone())
    lease = await leased(uows, task_id)
    await store(uows, lease, KEYS[0])
    await store(uows, lease, KEYS[1], error="boom")
    async with uows() as uow:
        reset = await uow.items.reset_unfinished(task_id, datetime.now(UTC))
        counts = await uow.items.counts(task_id)
        again = await uow.items.one(task_id, KEYS[1])
        await uow.commit()
    assert reset == [KEYS[1], KEYS[2], ItemKey("c2", "tutorial")]
    assert counts == ItemCounts(4, 1, 0, 3)
    assert again is not None
    assert (again.row.status, again.row.attempts, again.row.error) == ("pending", 1, "boom")


async def test_the_outbox_writer_makes_a_runnable_task_wait_and_a_final_one_stop(
    uows: AbstractUnitOfWorkFactory,
) -> None:
    owner = someone()
    task_id = await new_task(uows, owner)

    async def waiting_since() -> datetime | None:
        async with uows() as uow:
            found = await uow.tasks.view(task_id)
        assert found is not None
        return found[1].waiting_since

    async with uows() as uow:
        assert await uow.turns.take(task_id, owner) is not None  # a job took it
        await uow.commit()
    assert await waiting_since() is None
    dispatch = JobDispatch(GENERATE_CONTENT, task_id, tuple(KEYS), "resume")
    async with uows() as uow:
        ids = await uow.outbox.add(dispatch, dispatch)
        one = await uow.outbox.add_job(dispatch)
        await uow.commit()
    assert len({*ids, one}) == 3
    assert await waiting_since() is not None
    async with uows() as uow:
        view = await cancel_task(uow, owner, task_id)  # `emit`: the state and its message
        await uow.outbox.add_job(dispatch)  # a dispatch for a finished task waits for nothing
        await uow.commit()
    assert (view.status, view.seq, view.last_message) == (
        Status.CANCELLED,
        1,
        "Task cancelled by user",
    )
    assert await waiting_since() is None
