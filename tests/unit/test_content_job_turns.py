"""`ContentJob` on the in-memory unit of work: its turn, and the database's absence.

A job in a deployment's line hands the rest of its task back when its slice is over while
another task waits (or on a shutdown), and gives its turn away when another user's turn is
older, at most `MAX_DEFERRALS` times in a row. A database that goes away costs no result while
it comes back within the outage patience, and ends the job when it does not.
"""

from __future__ import annotations

import time

import pytest

from shared.domain import JobDispatch, Status
from shared.errors import DependencyUnavailable
from shared.service.generation import MAX_DEFERRALS, Pace, Stop
from shared.service.progress import WAITING_STEP
from tests.unit.content_jobs import (
    HOLDER,
    IN_LINE,
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


async def test_a_slice_over_while_another_task_waits_hands_the_rest_back(
    db: FakeDatabase, beat: Beat
) -> None:
    task_id = await new_task(db)
    await new_task(db, owner="bob")  # in line behind it

    outcome = await run(db, task_id, Generator(), beat, pace=IN_LINE)

    assert (outcome.stop, outcome.generated) == (Stop.HANDED_BACK, 1)
    assert statuses(db, task_id) == {"c1": "completed", "c2": "pending", "c3": "pending"}
    assert dispatches(db, task_id) == ["create", "resume"]
    resume = [m for m in db.state.outbox if isinstance(m, JobDispatch)][-1]
    assert [k.concept_id for k in resume.items] == ["c2", "c3"]
    assert steps(db, task_id)[-1] == WAITING_STEP
    assert db.state.tasks[task_id].status is Status.PROCESSING
    assert task_id in db.state.waiting_since  # in line again
    lease = db.state.leases[task_id]
    assert lease.holder is None


async def test_a_slice_over_with_nobody_waiting_goes_on(db: FakeDatabase, beat: Beat) -> None:
    task_id = await new_task(db)
    await new_task(db, owner="bob", taken=False)  # its message never reached a worker

    outcome = await run(db, task_id, Generator(), beat, pace=IN_LINE)

    assert (outcome.stop, outcome.generated) == (Stop.FINISHED, 3)


async def test_a_shutdown_hands_the_rest_back_at_the_next_boundary(
    db: FakeDatabase, beat: Beat
) -> None:
    task_id = await new_task(db)
    generator = Generator()

    outcome = await run(db, task_id, generator, beat, should_stop=lambda: bool(generator.calls))

    assert (outcome.stop, outcome.generated) == (Stop.HANDED_BACK, 1)
    assert dispatches(db, task_id) == ["create", "resume"]
    assert db.state.leases[task_id].recoveries == 0  # not a fault


async def test_a_job_gives_its_turn_to_a_user_whose_turn_is_older(
    db: FakeDatabase, beat: Beat
) -> None:
    served = await new_task(db)
    async with db() as uow:  # alice just had a turn
        await uow.turns.take(served, OWNER)
        await uow.commit()
    task_id = await new_task(db)
    await new_task(db, owner="bob")  # never served: the next turn is bob's
    generator = Generator()

    for deferral in range(1, MAX_DEFERRALS + 1):
        outcome = await run(db, task_id, generator, beat, pace=IN_LINE)
        assert (outcome.stop, outcome.generated) == (Stop.DEFERRED, 0)
        assert db.state.deferrals[task_id] == deferral

    assert generator.calls == []
    assert db.state.tasks[task_id].status is Status.PENDING
    assert task_id not in db.state.leases  # never taken
    assert dispatches(db, task_id) == ["create"] + ["turn"] * MAX_DEFERRALS
    turn = [m for m in db.state.outbox if isinstance(m, JobDispatch)][-1]
    assert [k.concept_id for k in turn.items] == ["c1", "c2", "c3"]

    # Deferred MAX_DEFERRALS times in a row, the next job runs it whatever the line says.
    outcome = await run(db, task_id, generator, beat, pace=Pace(slice_seconds=60))
    assert (outcome.stop, outcome.generated) == (Stop.FINISHED, 3)


async def test_a_database_away_for_a_while_costs_no_result(db: FakeDatabase, beat: Beat) -> None:
    """The outage patience: the job waits with backoff, keeping the result it generated."""
    task_id = await new_task(db)
    db.outages = 1  # away as the job starts

    async def cut(call: int) -> None:
        if call == 1:
            db.outages = 2  # and again while the first item is generated

    generator = Generator(act=cut)
    outcome = await run(db, task_id, generator, beat, outage_patience=30)

    assert (outcome.stop, outcome.generated) == (Stop.FINISHED, 3)
    assert db.outages == 0
    assert len(generator.calls) == 3  # nothing generated twice
    assert [i.attempts for i in db.state.items[task_id]] == [1, 1, 1]
    assert db.state.tasks[task_id].status is Status.COMPLETED


async def test_a_database_away_past_the_patience_ends_the_job(db: FakeDatabase, beat: Beat) -> None:
    task_id = await new_task(db)

    async def cut(call: int) -> None:
        db.outages = 1_000_000

    started = time.monotonic()
    with pytest.raises(DependencyUnavailable):
        await run(db, task_id, Generator(act=cut), beat, outage_patience=0.2)

    assert time.monotonic() - started < 5  # gave up after its patience, not at the backoff cap
    db.outages = 0
    assert statuses(db, task_id) == {"c1": "pending", "c2": "pending", "c3": "pending"}
    assert db.state.leases[task_id].holder == HOLDER  # the reconciler's to take back
    assert beat.stopped
