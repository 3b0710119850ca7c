"""A task's item counters against the real PostgreSQL: exact at every commit, whoever writes.

`roadmap_tasks.items_total/items_completed/items_failed` are what every item notification
counts with (no scan per item). Each test compares them with a real GROUP BY over the items
(the one the task view runs, `TaskRepository.view`) after every kind of write: create, item
results, a job handed back and resumed, a retry; and checks the store's next pending item when
a retry commits while the store waits for the task row lock.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from uuid import UUID, uuid4

import asyncpg
from alembic import command

from harness import resources as res
from harness import sql
from services.worker.jobs.generate import lease_keeper
from shared.adapters.postgres import UnitOfWorkFactory
from shared.adapters.postgres.migrate import alembic_config
from shared.config.settings import DatabaseSettings
from shared.domain import ItemKey
from shared.domain.content import ContentRequest
from shared.domain.records import PendingItem
from shared.service.generation import ContentJob, JobOutcome, Pace, Stop
from shared.service.tasks import cancel_task, retry_task
from tests.support import tasks
from tests.support.worker import notifications

OWNER = "counter-tests"

ALONE = Pace(in_line=False)
"""These tests run each job on its own, outside any line of waiting tasks."""


async def counted_and_scanned(uow_factory: UnitOfWorkFactory, task_id: UUID) -> tuple[int, ...]:
    """The counters, asserted equal to a GROUP BY over the items: (total, completed, failed)."""
    async with uow_factory() as uow:
        counters = await uow.items.counts(task_id)
        found = await uow.tasks.view(task_id)
    assert found is not None
    scanned = found[1].items
    counted = (counters.total, counters.completed, counters.failed, counters.pending)
    assert counted == (scanned.total, scanned.completed, scanned.failed, scanned.pending)
    return counted[:3]


def flaky(calls: list[str]) -> Callable[[ContentRequest], object]:
    """Fails the first attempt of every concept whose id holds "fail"."""

    async def generate(request: ContentRequest) -> str:
        calls.append(request.concept_id)
        if "fail" in request.concept_id and request.attempt == 1:
            raise RuntimeError("first attempt fails")
        return f"# {request.concept_title}"

    return generate


async def run_job(
    uow_factory: UnitOfWorkFactory, task_id: UUID, calls: list[str], stop_after: int = 0
) -> JobOutcome:
    """A job over the task's pending items; with `stop_after`, a shutdown asked after that
    many generator calls (the job hands the rest back at its next boundary)."""
    before = len(calls)
    job = ContentJob(
        uow_factory,
        flaky(calls),  # type: ignore[arg-type]
        keep_lease=lease_keeper(uow_factory.database),
        task_id=task_id,
        holder=f"job-{uuid4()}",
        item_timeout=5,
        lease_seconds=30,
        pace=ALONE,
        should_stop=lambda: bool(stop_after) and len(calls) - before >= stop_after,
    )
    return await job.run()


async def test_counts_stay_exact_through_create_results_hand_back_resume_and_retry(
    uow_factory: UnitOfWorkFactory,
) -> None:
    concepts = [f"c{i}-fail" if i % 3 == 0 else f"c{i}" for i in range(12)]  # 4 fail first
    task_id = await tasks.new_task(uow_factory, OWNER, concepts, ("tutorial", "quiz"))
    assert await counted_and_scanned(uow_factory, task_id) == (24, 0, 0)

    calls: list[str] = []
    outcome = await run_job(uow_factory, task_id, calls, stop_after=7)
    assert (outcome.stop, outcome.generated) == (Stop.HANDED_BACK, 7)
    total, completed, failed = await counted_and_scanned(uow_factory, task_id)
    assert (total, completed + failed) == (24, 7)

    outcome = await run_job(uow_factory, task_id, calls)  # the resumed job
    assert (outcome.stop, outcome.generated) == (Stop.FINISHED, 17)
    assert await counted_and_scanned(uow_factory, task_id) == (24, 16, 8)

    async with uow_factory() as uow:
        await retry_task(uow, OWNER, task_id)
        await uow.commit()
    assert await counted_and_scanned(uow_factory, task_id) == (24, 16, 0)

    outcome = await run_job(uow_factory, task_id, calls)
    assert (outcome.stop, outcome.generated) == (Stop.FINISHED, 8)
    assert await counted_and_scanned(uow_factory, task_id) == (24, 24, 0)

    # Each item's notification counted one more finished item than the one before it (a
    # retry sets the failed ones back to pending), and the last one says what the scan says.
    counts = [
        (n["data"]["completed_items"], n["data"]["failed_items"], n["data"]["total_items"])
        for n in await notifications(uow_factory, task_id)
        if n["step"] in ("content_item_completed", "content_item_failed")
    ]
    assert len(counts) == 32
    steps = [b[0] + b[1] - a[0] - a[1] for a, b in itertools.pairwise(counts)]
    assert steps == [1] * 23 + [1 - 8] + [1] * 7  # the retry turned 8 failed back to pending
    assert counts[-1] == (24, 0, 24)


async def test_a_retry_committed_while_the_store_waits_for_the_lock_is_seen(
    uow_factory: UnitOfWorkFactory,
) -> None:
    """The store's statement starts before the retry commits and gets the lock after: its own
    snapshot misses the item the retry made pending, so it must read the next item again."""
    task_id = await tasks.new_task(uow_factory, OWNER, ["a", "b"])
    async with uow_factory() as uow:
        lease = await uow.leases.acquire(task_id, "old-job", 30)
        assert lease is not None
        await uow.commit()
    await tasks.start(uow_factory, task_id)
    a, b = ItemKey("a", "tutorial"), ItemKey("b", "tutorial")
    async with uow_factory() as uow:
        stored = await uow.items.store_result(
            lease, a, content=None, error="failed", now=datetime.now(UTC), lease_seconds=30
        )
        assert stored is not None
        assert stored.following == PendingItem(b, "Title b", 0)
        await uow.commit()

    async with uow_factory() as retrying:
        await cancel_task(retrying, OWNER, task_id)
        await retry_task(retrying, OWNER, task_id)  # `a` is pending again; the lock is held
        async with uow_factory() as storing:
            store = asyncio.create_task(
                storing.items.store_result(
                    lease, b, content="# b", error=None, now=datetime.now(UTC), lease_seconds=30
                )
            )
            await wait_for_lock_wait(uow_factory, task_id)
            await retrying.commit()
            stored = await store
            await storing.commit()

    assert stored is not None
    assert stored.counts is not None
    assert (stored.counts.completed, stored.counts.failed, stored.counts.pending) == (1, 0, 1)
    assert stored.following == PendingItem(a, "Title a", 1)  # not None: the task is not finished
    assert await counted_and_scanned(uow_factory, task_id) == (2, 1, 0)


async def test_a_fenced_out_store_writes_nothing_even_if_committed(
    uow_factory: UnitOfWorkFactory,
) -> None:
    task_id = await tasks.new_task(uow_factory, OWNER, ["a", "b"])
    await tasks.start(uow_factory, task_id)
    async with uow_factory() as uow:
        old = await uow.leases.acquire(task_id, "old-job", 0)  # lapses at once
        assert old is not None
        await uow.commit()
    async with uow_factory() as uow:  # the lapsed lease is taken by another job
        assert await uow.leases.acquire(task_id, "new-job", 30) is not None
        await uow.commit()

    async with uow_factory() as uow:
        stored = await uow.items.store_result(
            old,
            ItemKey("a", "tutorial"),
            content="# a",
            error=None,
            now=datetime.now(UTC),
            lease_seconds=30,
        )
        await uow.commit()  # the job would roll back; the statement itself wrote nothing

    assert stored is not None
    assert (stored.fenced_out, stored.counts) == (True, None)
    assert await counted_and_scanned(uow_factory, task_id) == (2, 0, 0)
    async with uow_factory() as uow:
        assert await uow.leases.held_by(task_id, "new-job") is not None


async def wait_for_lock_wait(uow_factory: UnitOfWorkFactory, task_id: UUID) -> None:
    """Until a session of this database waits for a lock (the store, on the task row)."""
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        waiting = await sql.fetchval(
            uow_factory,
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock'",
        )
        if waiting:
            return
        assert asyncio.get_running_loop().time() < deadline, "the store never waited for the lock"
        await asyncio.sleep(0.02)


async def test_the_migration_counts_the_items_of_existing_tasks() -> None:
    statuses = ("completed", "failed", "pending", "failed")
    with res.database("taskrelay_counters") as url:
        config = alembic_config(DatabaseSettings(url=url))
        await asyncio.to_thread(command.upgrade, config, "0005_task_page")
        task_id, empty_id = uuid4(), uuid4()
        conn = await asyncpg.connect(DatabaseSettings(url=url).asyncpg_dsn)
        try:
            for tid in (task_id, empty_id):
                await conn.execute(
                    "INSERT INTO roadmap_tasks (task_id, roadmap_id, owner_id, status) "
                    "VALUES ($1, 'r', 'o', 'processing')",
                    tid,
                )
            for position, status in enumerate(statuses):
                await conn.execute(
                    "INSERT INTO content_items (task_id, concept_id, content_type, position, "
                    "concept_title, status) VALUES ($1, $2, 'quiz', $3, 't', $4)",
                    task_id,
                    f"c{position}",
                    position,
                    status,
                )
            await asyncio.to_thread(command.upgrade, config, "head")
            rows = await conn.fetch(
                "SELECT task_id, items_total, items_completed, items_failed FROM roadmap_tasks"
            )
        finally:
            await conn.close()
    counters = {r["task_id"]: tuple(r)[1:] for r in rows}
    assert counters == {task_id: (4, 1, 2), empty_id: (0, 0, 0)}
