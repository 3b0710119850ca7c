"""The reconciler's recoveries (resume, finish, fail), against the in-memory unit of work.

`test_recovery_rules.py` covers `judge`; these cover what a recovery writes: the lease taken
back, the task resumed with a `resume` job dispatch, finished, or failed after too many
recoveries without progress. RQ is a fake state reader; the liveness facts are seeded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from uuid import UUID

from shared.domain import JobDispatch, Notification, Status
from shared.domain.records import WorkFacts
from shared.service import NewTask, create_task
from shared.service.progress import ItemResult, start_task, store_item_result
from shared.service.recovery import Action, JobState, JobStatus, Reconciler
from tests.unit.fakes import FakeDatabase

HOLDER = "job-1"
MAX_RECOVERIES = 3


class FakeRq:
    """What RQ says of jobs: only those given, the rest are GONE (lost from Redis)."""

    def __init__(self, states: Mapping[str, JobState] | None = None) -> None:
        self.states = dict(states or {})

    async def __call__(self, job_ids: Sequence[str]) -> Mapping[str, JobState]:
        return {i: self.states[i] for i in job_ids if i in self.states}


async def running_task(db: FakeDatabase, *, store_all: bool = False) -> UUID:
    """A processing task whose job (HOLDER) took the lease, then went quiet past its expiry."""
    async with db() as uow:
        view = await create_task(uow, "alice", NewTask("r", [("c1", "A"), ("c2", "B")], ["quiz"]))
        task_id = view.task_id
        lease = await uow.leases.acquire(task_id, HOLDER, 10)
        assert lease is not None
        locked = await uow.tasks.lock(task_id)
        assert locked is not None
        await start_task(uow, locked)
        while store_all and (item := await uow.items.next_pending(task_id)) is not None:
            result = ItemResult(content="x")
            recorded = await store_item_result(uow, lease, item, result, lease_seconds=10)
            assert recorded is not None
        await uow.commit()
    db.state.clock = 100.0  # the lease expired 90 s ago
    db.state.facts = [
        WorkFacts(
            task_id=task_id,
            status=Status.PROCESSING,
            holder=HOLDER,
            generation=1,
            lapsed_for=90.0,
            dispatch_id=1,
            dispatch_waiting=False,
            dispatch_parked=False,
            published_for=120.0,
            dispatch_taken=True,
            job_id=HOLDER,
            cursor=(datetime.now(UTC), task_id),
        )
    ]
    return task_id


async def sweep(db: FakeDatabase, rq: FakeRq | None = None) -> list[tuple[UUID, Action]]:
    reconciler = Reconciler(
        db, rq or FakeRq(), stale_after=30.0, max_recoveries=MAX_RECOVERIES, quiet_seconds=0
    )
    return [(r.task_id, r.action) for r in await reconciler.sweep(healthy_for=3600.0)]


async def test_a_task_whose_job_died_is_resumed_with_its_pending_items(db: FakeDatabase) -> None:
    task_id = await running_task(db)
    seq_before = db.state.tasks[task_id].seq

    assert await sweep(db) == [(task_id, Action.RESUMED)]

    lease = db.state.leases[task_id]
    assert (lease.holder, lease.generation, lease.recoveries) == (None, 2, 1)
    note, job = db.state.outbox[-2:]
    assert isinstance(note, Notification)
    assert isinstance(job, JobDispatch)
    assert (note.step, note.seq, note.status) == (
        "content_generation_resumed",
        seq_before + 1,
        Status.PROCESSING,
    )
    assert note.data["recovery"] == 1
    assert "stopped renewing its lease" in note.data["reason"]
    assert (job.reason, [k.concept_id for k in job.items]) == ("resume", ["c1", "c2"])
    assert db.state.tasks[task_id].status is Status.PROCESSING


async def test_a_task_whose_job_still_runs_is_left_alone(db: FakeDatabase) -> None:
    task_id = await running_task(db)
    db.state.facts = [replace(f, lapsed_for=5.0) for f in db.state.facts]  # lapsed just now
    sent = len(db.state.outbox)

    assert await sweep(db, FakeRq({HOLDER: JobState(JobStatus.STARTED, 200.0)})) == []
    assert len(db.state.outbox) == sent
    assert db.state.leases[task_id].holder == HOLDER


async def test_a_task_with_nothing_pending_is_finished(db: FakeDatabase) -> None:
    task_id = await running_task(db, store_all=True)

    assert await sweep(db) == [(task_id, Action.FINISHED)]

    state = db.state.tasks[task_id]
    assert (state.status, state.error_message) == (Status.COMPLETED, None)
    lease = db.state.leases[task_id]
    assert (lease.holder, lease.recoveries) == (None, 0)
    assert not isinstance(db.state.outbox[-1], JobDispatch)


async def test_a_task_recovered_too_often_without_progress_fails_saying_why(
    db: FakeDatabase,
) -> None:
    task_id = await running_task(db)
    db.state.leases[task_id].recoveries = MAX_RECOVERIES

    assert await sweep(db) == [(task_id, Action.FAILED)]

    state = db.state.tasks[task_id]
    assert state.status is Status.FAILED
    assert state.completed_at is not None
    assert state.error_message is not None
    assert state.error_message.startswith(
        f"Content generation stopped: no progress after {MAX_RECOVERIES} recoveries"
    )
    assert db.state.leases[task_id].recoveries == 0
    assert not any(isinstance(m, JobDispatch) and m.reason == "resume" for m in db.state.outbox)
