"""`ContentJob`, the worker's job body, on the in-memory unit of work: every way a job stops.

The job runs as the worker runs it, with its lease heartbeat replaced by `Beat` (the job is
handed its heartbeat, `shared.service.lease_keeper.KeepLease`) and generators written here.
Each test checks what the job leaves behind (the task, its items, its lease, the outbox) and
why it says it stopped. A generator that acts on the task (cancels it, takes its lease back,
cuts the database) stands in for whatever does that while an item is generated.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from uuid import UUID, uuid4

import pytest

from shared.domain import JobDispatch, Notification, Status
from shared.domain.content import ContentGenerator, ContentRequest
from shared.domain.records import Lease
from shared.errors import DependencyUnavailable
from shared.service import NewTask, cancel_task, create_task
from shared.service.generation import MAX_DEFERRALS, ContentJob, JobOutcome, Pace, Stop
from shared.service.progress import WAITING_STEP
from tests.unit.fakes import FakeDatabase

OWNER = "alice"
HOLDER = "job-1"
ALONE = Pace(in_line=False)
"""A job on its own, outside any line of waiting tasks."""
IN_LINE = Pace(item_concurrency=1, slice_seconds=0.0)
"""A job in a deployment's line whose slice is over after its first item."""


class Beat:
    """The job's heartbeat: records the lease it keeps; a test sets `lost` as a renewal that
    found the lease taken back would."""

    def __init__(self) -> None:
        self.lost = False
        self.kept: list[Lease] = []
        self.stopped = False

    def __call__(self, lease: Lease, seconds: float) -> Beat:
        self.kept.append(lease)
        return self

    def stop(self) -> None:
        self.stopped = True


class Generator:
    """A coroutine generator that remembers its calls; `act` runs before the n-th call's
    answer (1 for the first), `fail` names the concepts it raises for."""

    def __init__(
        self,
        act: Callable[[int], Awaitable[None]] | None = None,
        fail: Sequence[str] = (),
    ) -> None:
        self.calls: list[ContentRequest] = []
        self._act = act
        self._fail = fail

    async def __call__(self, request: ContentRequest) -> str:
        self.calls.append(request)
        if self._act is not None:
            await self._act(len(self.calls))
        if request.concept_id in self._fail:
            raise RuntimeError(f"model refused {request.concept_id}")
        return f"# {request.concept_title}"


@pytest.fixture(name="db")
def fixture_db() -> FakeDatabase:
    return FakeDatabase()


@pytest.fixture(name="beat")
def fixture_beat() -> Beat:
    return Beat()


async def new_task(
    db: FakeDatabase, owner: str = OWNER, concepts: int = 3, *, taken: bool = True
) -> UUID:
    """A task made as the API makes it; with `taken`, its job message was taken by a worker
    (in the inbox, as the consumer records it before the job runs): it is in line."""
    new = NewTask("roadmap", [(f"c{i}", f"Concept {i}") for i in range(1, concepts + 1)], ["quiz"])
    async with db() as uow:
        task_id = (await create_task(uow, owner, new)).task_id
        if taken:
            await uow.inbox.record(uuid4(), task_id, HOLDER)
        await uow.commit()
    return task_id


async def run(
    db: FakeDatabase,
    task_id: UUID,
    generator: ContentGenerator,
    beat: Beat,
    *,
    pace: Pace = ALONE,
    holder: str = HOLDER,
    item_timeout: float = 5.0,
    should_stop: Callable[[], bool] = lambda: False,
    outage_patience: float = 600.0,
) -> JobOutcome:
    job = ContentJob(
        db,
        generator,
        keep_lease=beat,
        task_id=task_id,
        holder=holder,
        item_timeout=item_timeout,
        lease_seconds=30,
        should_stop=should_stop,
        outage_patience=outage_patience,
        pace=pace,
    )
    return await job.run()


def statuses(db: FakeDatabase, task_id: UUID) -> dict[str, str]:
    return {i.key.concept_id: i.status for i in db.state.items[task_id]}


def steps(db: FakeDatabase, task_id: UUID) -> list[str]:
    sent = [m for m in db.state.outbox if isinstance(m, Notification) and m.task_id == task_id]
    seqs = [n.seq for n in sent]
    assert seqs == list(range(1, len(sent) + 1))  # `seq` strictly rising, no gap
    return [n.step for n in sent]


def dispatches(db: FakeDatabase, task_id: UUID) -> list[str]:
    return [
        m.reason for m in db.state.outbox if isinstance(m, JobDispatch) and m.task_id == task_id
    ]


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
