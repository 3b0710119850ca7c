"""`ContentJob`, the worker's job body, on the in-memory unit of work: its items and its lease.

Every way a job ends while it holds its task: all items done, an item failed (and what a
generator may give), cancelled mid-job, fenced out by a newer lease generation, its heartbeat
finding the lease lost; and the ways it never starts (unknown, finished, busy). Each test checks
what the job leaves behind (the task, its items, its lease, the outbox) and why it says it
stopped. Its turn in line and the database's absence: `test_content_job_turns.py`.
"""

from __future__ import annotations

import asyncio
import time
from uuid import uuid4

import pytest

from shared.domain import Status
from shared.domain.content import ContentGenerator, ContentRequest
from shared.domain.records import Lease
from shared.service import cancel_task
from shared.service.generation import Pace, Stop
from tests.unit.content_jobs import (
    HOLDER,
    OWNER,
    Beat,
    Generator,
    dispatches,
    new_task,
    run,
    statuses,
    steps,
)
from tests.unit.fakes import FakeDatabase


async def test_a_job_generates_every_pending_item_then_completes_the_task(
    db: FakeDatabase, beat: Beat
) -> None:
    task_id = await new_task(db)
    generator = Generator()

    outcome = await run(db, task_id, generator, beat)

    assert (outcome.stop, outcome.generated) == (Stop.FINISHED, 3)
    assert db.state.tasks[task_id].status is Status.COMPLETED
    assert statuses(db, task_id) == {"c1": "completed", "c2": "completed", "c3": "completed"}
    assert [i.content for i in db.state.items[task_id]] == [f"# Concept {i}" for i in (1, 2, 3)]
    assert [(c.concept_id, c.attempt) for c in generator.calls] == [("c1", 1), ("c2", 1), ("c3", 1)]
    assert steps(db, task_id) == [
        "content_generation_started",
        "content_item_completed",
        "content_item_completed",
        "content_item_completed",
        "content_generation_completed",
    ]
    assert db.state.leases[task_id].holder is None  # released
    assert beat.kept == [Lease(task_id, HOLDER, 1)]
    assert beat.stopped


async def test_items_run_up_to_item_concurrency_at_once(db: FakeDatabase, beat: Beat) -> None:
    task_id = await new_task(db, concepts=5)
    running, peak = 0, 0

    async def generator(request: ContentRequest) -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        for _ in range(3):  # let the other items in flight run meanwhile
            await asyncio.sleep(0)
        running -= 1
        return request.concept_id

    outcome = await run(db, task_id, generator, beat, pace=Pace(item_concurrency=2, in_line=False))

    assert (outcome.stop, outcome.generated, peak) == (Stop.FINISHED, 5, 2)
    assert db.state.tasks[task_id].status is Status.COMPLETED


async def test_a_failed_item_is_recorded_and_the_job_goes_on(db: FakeDatabase, beat: Beat) -> None:
    task_id = await new_task(db)

    outcome = await run(db, task_id, Generator(fail=["c2"]), beat)

    assert (outcome.stop, outcome.generated) == (Stop.FINISHED, 3)
    assert statuses(db, task_id) == {"c1": "completed", "c2": "failed", "c3": "completed"}
    failed = db.state.items[task_id][1]
    assert (failed.error, failed.attempts, failed.content) == ("model refused c2", 1, None)
    state = db.state.tasks[task_id]
    assert (state.status, state.error_message) == (
        Status.PARTIAL_FAILURE,
        "1 of 3 content items failed",
    )
    assert steps(db, task_id)[2] == "content_item_failed"


async def never_answers(request: ContentRequest) -> str:
    await asyncio.Event().wait()
    return "never"


async def not_content(request: ContentRequest) -> object:
    return 42


async def not_json(request: ContentRequest) -> object:
    return {"when": time}  # a module: no JSON for it


def blocking(request: ContentRequest) -> str:
    """A plain function: the job runs it in a thread of its own."""
    return request.concept_id


@pytest.mark.parametrize(
    ("generator", "error"),
    [
        (never_answers, "generation timed out after 0.05 s"),
        (not_content, "generator returned int, not str or dict"),
        (not_json, "generator returned content that is not JSON: "),
        (blocking, None),
    ],
    ids=["timeout", "not-content", "not-json", "sync"],
)
async def test_what_a_generator_gives_decides_the_item(
    db: FakeDatabase, beat: Beat, generator: ContentGenerator, error: str | None
) -> None:
    task_id = await new_task(db, concepts=1)

    outcome = await run(db, task_id, generator, beat, item_timeout=0.05)

    assert (outcome.stop, outcome.generated) == (Stop.FINISHED, 1)
    item = db.state.items[task_id][0]
    if error is None:
        assert (item.status, item.content) == ("completed", "c1")
        assert db.state.tasks[task_id].status is Status.COMPLETED
    else:
        assert item.status == "failed"
        assert item.error is not None
        assert item.error.startswith(error)
        assert db.state.tasks[task_id].status is Status.FAILED


async def test_a_cancel_while_an_item_runs_stops_the_job_at_that_item(
    db: FakeDatabase, beat: Beat
) -> None:
    task_id = await new_task(db)

    async def cancel(call: int) -> None:
        async with db() as uow:
            await cancel_task(uow, OWNER, task_id)
            await uow.commit()

    generator = Generator(act=cancel)
    outcome = await run(db, task_id, generator, beat)

    assert outcome.stop is Stop.CANCELLED
    assert outcome.generated == 1  # the item in flight still records its result
    assert len(generator.calls) == 1  # nothing started after the cancel
    assert db.state.tasks[task_id].status is Status.CANCELLED
    assert statuses(db, task_id) == {"c1": "completed", "c2": "pending", "c3": "pending"}
    assert db.state.leases[task_id].holder is None
    assert steps(db, task_id)[-2:] == ["cancelled", "content_item_completed"]


async def test_a_job_whose_lease_was_taken_back_writes_nothing_more(
    db: FakeDatabase, beat: Beat
) -> None:
    """Fencing: the reconciler took the lease back (a newer generation) while the item ran."""
    task_id = await new_task(db)

    async def take_back(call: int) -> None:
        db.state.clock += 60  # the lease lapsed: this job stopped renewing in time
        async with db() as uow:
            assert await uow.leases.take_back(task_id, generation=1) == 1
            await uow.commit()

    generator = Generator(act=take_back)
    outcome = await run(db, task_id, generator, beat)

    assert (outcome.stop, outcome.generated) == (Stop.LEASE_LOST, 0)
    assert len(generator.calls) == 1
    item = db.state.items[task_id][0]
    assert (item.status, item.attempts) == ("pending", 0)  # the result was refused
    assert steps(db, task_id) == ["content_generation_started"]
    lease = db.state.leases[task_id]
    assert (lease.holder, lease.generation) == (None, 2)  # as the reconciler left it
    assert db.state.tasks[task_id].status is Status.PROCESSING  # the reconciler's to resume
    assert beat.stopped


async def test_a_heartbeat_that_lost_the_lease_stops_the_job_at_the_next_boundary(
    db: FakeDatabase, beat: Beat
) -> None:
    task_id = await new_task(db)

    async def lose(call: int) -> None:
        beat.lost = True

    generator = Generator(act=lose)
    outcome = await run(db, task_id, generator, beat)

    assert (outcome.stop, outcome.generated) == (Stop.LEASE_LOST, 1)
    assert len(generator.calls) == 1
    assert statuses(db, task_id) == {"c1": "completed", "c2": "pending", "c3": "pending"}
    assert db.state.leases[task_id].holder == HOLDER  # not released: the reconciler takes it
    assert dispatches(db, task_id) == ["create"]  # nothing handed back by this job


async def test_an_unknown_task_is_not_found(db: FakeDatabase, beat: Beat) -> None:
    generator = Generator()
    outcome = await run(db, uuid4(), generator, beat)
    assert (outcome.stop, outcome.generated, generator.calls) == (Stop.NOT_FOUND, 0, [])
    assert beat.kept == []


async def test_a_finished_task_is_not_runnable(db: FakeDatabase, beat: Beat) -> None:
    """A redelivered message or a duplicate job after the task was finished generates nothing."""
    task_id = await new_task(db)
    assert (await run(db, task_id, Generator(), beat)).stop is Stop.FINISHED
    generator = Generator()

    outcome = await run(db, task_id, generator, beat, holder="job-2")

    assert (outcome.stop, outcome.generated, generator.calls) == (Stop.NOT_RUNNABLE, 0, [])


async def test_a_task_another_live_job_holds_is_busy(db: FakeDatabase, beat: Beat) -> None:
    task_id = await new_task(db)
    async with db() as uow:
        assert await uow.leases.acquire(task_id, "job-0", 30) is not None
        await uow.commit()
    generator = Generator()

    outcome = await run(db, task_id, generator, beat)

    assert (outcome.stop, outcome.generated, generator.calls) == (Stop.BUSY, 0, [])
    assert db.state.leases[task_id].holder == "job-0"
