"""Whose turn is next, on the real PostgreSQL (`shared.adapters.postgres.turns`), and what a job
does with it (`ContentJob`: giving its turn away, handing its task back after a slice).

The line is global to a database, so this module has a database of its own, and each test
starts from an empty line.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from uuid import UUID, uuid4

import pytest

from harness import sql
from harness.resources import Resources, isolated
from services.worker.jobs.generate import lease_keeper
from shared.adapters.postgres import UnitOfWorkFactory
from shared.config.settings import Settings
from shared.domain.content import ContentRequest
from shared.service.generation import MAX_DEFERRALS, ContentJob, Pace, Stop
from tests.support import tasks
from tests.support.worker import notifications, outbox_payloads


@pytest.fixture(name="own", scope="module")
def own_fixture() -> Iterator[Resources]:
    with isolated("taskrelay_turns") as resources:
        yield resources


@pytest.fixture(name="line")
async def line_fixture(own: Resources) -> AsyncIterator[UnitOfWorkFactory]:
    """A unit-of-work factory on this module's database, whose line of waiting tasks is empty:
    every task a test before left waiting was taken by a job (`turns.take`)."""
    uow_factory = UnitOfWorkFactory(Settings.from_env(own.env()).database, pool_size=4)
    async with uow_factory() as uow:
        for task_id in await waiting(uow_factory):
            await uow.turns.take(task_id, "earlier-test")
        await uow.commit()
    try:
        yield uow_factory
    finally:
        await uow_factory.close()


async def waiting(uow_factory: UnitOfWorkFactory) -> list[UUID]:
    query = "SELECT task_id FROM roadmap_tasks WHERE waiting_since IS NOT NULL"
    return [row[0] for row in await sql.fetch(uow_factory, query)]


async def in_line(uow_factory: UnitOfWorkFactory, owner: str, items: int = 2) -> UUID:
    """A task made as the API makes it, whose job message a worker has taken (its RQ job is in
    line), as the consumer records it."""
    task_id = await tasks.new_task(uow_factory, owner, items)
    async with uow_factory() as uow:
        await uow.inbox.record(uuid4(), task_id, f"job-{uuid4()}")
        await uow.commit()
    return task_id


async def standing(uow_factory: UnitOfWorkFactory, task_id: UUID) -> tuple[bool, int, str | None]:
    async with uow_factory() as uow:
        found = await uow.turns.standing(task_id)
    assert found is not None
    return found.waiting, found.deferrals, found.next_owner


async def take(uow_factory: UnitOfWorkFactory, task_id: UUID, owner: str) -> float | None:
    async with uow_factory() as uow:
        waited = await uow.turns.take(task_id, owner)
        await uow.commit()
    return waited


async def test_a_user_never_served_goes_first_then_the_oldest_turn(
    line: UnitOfWorkFactory,
) -> None:
    served_first = await in_line(line, "served-first")
    await take(line, served_first, "served-first")
    served_later = await in_line(line, "served-later")
    await take(line, served_later, "served-later")

    a = await in_line(line, "served-first")
    b = await in_line(line, "served-later")
    assert await standing(line, b) == (True, 0, "served-first")  # the oldest turn
    newcomer = await in_line(line, "never-served")
    assert await standing(line, b) == (True, 0, "never-served")
    assert await standing(line, a) == (True, 0, "never-served")
    await take(line, newcomer, "never-served")
    assert await standing(line, b) == (True, 0, "served-first")


async def test_a_user_many_tasks_share_one_turn(line: UnitOfWorkFactory) -> None:
    many = [await in_line(line, "many") for _ in range(6)]
    one = await in_line(line, "one")
    await take(line, many[0], "many")
    assert (await standing(line, many[1]))[2] == "one"  # not a sixth of the turns: a half
    await take(line, one, "one")
    assert (await standing(line, many[1]))[2] == "many"


async def test_a_task_no_worker_took_is_not_in_line(line: UnitOfWorkFactory) -> None:
    """Its message is on its way (or lost, which the reconciler mends): it holds nobody off."""
    mine = await in_line(line, "mine")
    not_taken = await tasks.new_task(line, "not-taken", 2)
    assert await standing(line, mine) == (True, 0, "mine")
    assert await standing(line, not_taken) == (True, 0, "mine")
    async with line() as uow:
        assert await uow.turns.others_waiting(not_taken)
        assert not await uow.turns.others_waiting(mine)


async def test_taking_a_task_ends_its_wait(line: UnitOfWorkFactory) -> None:
    task_id = await in_line(line, "taker")
    waited = await take(line, task_id, "taker")
    assert waited is not None
    assert waited >= 0
    assert await standing(line, task_id) == (False, 0, None)
    assert await take(line, task_id, "taker") is None  # not waiting any more


async def instant(request: ContentRequest) -> str:
    return request.concept_id


def job(uow_factory: UnitOfWorkFactory, task_id: UUID, generator: object, pace: Pace) -> ContentJob:
    return ContentJob(
        uow_factory,
        generator,  # type: ignore[arg-type]
        keep_lease=lease_keeper(uow_factory.database),
        task_id=task_id,
        holder=f"job-{uuid4()}",
        item_timeout=10,
        lease_seconds=30,
        pace=pace,
    )


async def test_a_job_gives_its_turn_to_a_fairer_user_at_most_max_deferrals_times(
    line: UnitOfWorkFactory,
) -> None:
    bulk = await in_line(line, "bulk")
    await take(line, await in_line(line, "bulk"), "bulk")  # bulk has had a turn
    await in_line(line, "fairer")  # never served: its turn is next
    for n in range(1, MAX_DEFERRALS + 1):
        outcome = await job(line, bulk, instant, Pace()).run()
        assert (outcome.stop, outcome.generated) == (Stop.DEFERRED, 0)
        assert await standing(line, bulk) == (True, n, "fairer")
    dispatches = await outbox_payloads(line, bulk, "job")
    assert [d["reason"] for d in dispatches] == ["create"] + ["turn"] * MAX_DEFERRALS
    outcome = await job(line, bulk, instant, Pace()).run()  # it waited long enough
    assert (outcome.stop, outcome.generated) == (Stop.FINISHED, 2)


async def test_a_slice_hands_back_while_others_wait_and_costs_no_item_twice(
    line: UnitOfWorkFactory,
) -> None:
    task_id = await in_line(line, "sliced", 12)
    await take(line, task_id, "sliced")  # a job took it: no longer in line
    calls: dict[str, int] = {}

    async def slow(request: ContentRequest) -> str:
        calls[request.concept_id] = calls.get(request.concept_id, 0) + 1
        await asyncio.sleep(0.1)
        return request.concept_id

    other = await in_line(line, "other")
    pace = Pace(item_concurrency=3, slice_seconds=0.25)
    first = await job(line, task_id, slow, pace).run()
    assert first.stop is Stop.HANDED_BACK
    assert 3 <= first.generated < 12
    assert await standing(line, task_id) == (True, 0, "other")
    await take(line, other, "other")  # the other task had its turn meanwhile
    rest = await job(line, task_id, slow, pace).run()
    assert rest.stop is Stop.FINISHED
    assert first.generated + rest.generated == 12
    assert calls == {f"c{i:03d}": 1 for i in range(12)}
    steps = [n["step"] for n in await notifications(line, task_id)]
    assert steps.count("content_generation_waiting") == 1
    assert steps.count("content_generation_running") == 1
    assert steps.count("content_item_completed") == 12
    query = "SELECT recoveries FROM task_leases WHERE task_id = $1"
    recoveries = await sql.fetch(line, query, task_id)
    assert [r[0] for r in recoveries] == [0]  # a slice is not a recovery
