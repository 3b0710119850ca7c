"""Getting a task out of `processing` when the job generating it is gone.

Two ways a job goes away without finishing its task:

- it dies (SIGKILL, OOM, a lost machine): its lease lapses, and `sweep_lapsed_leases`, run by
  every worker's watchdog, takes the lease back under the task row lock. It writes a `resume`
  job dispatch for the items still pending (into the outbox, like every dispatch), or, after
  `max_resumes` lost workers in a row, fails the task saying why. A task with nothing pending
  is simply finished.
- it raises (a bug, the job timeout, the database gone mid-job): RQ's failure callback calls
  `fail_for_job`, which fails the task only if that job still holds its lease, so a late
  callback (RQ's abandoned-job cleanup runs many minutes later) never undoes a resumed run.

Every status change goes through the state machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from shared.db.uow import UnitOfWork, UnitOfWorkFactory
from shared.db.work import LeaseRepository, WorkItemRepository
from shared.domain import JobDispatch, Status, TaskState
from shared.logging import get_logger
from shared.messaging import GENERATE_CONTENT
from shared.service.generation import finish_task, progress_data
from shared.service.transitions import transition

log = get_logger(__name__)

SWEEP_BATCH = 100


@dataclass(frozen=True, slots=True)
class Recovery:
    task_id: UUID
    action: str
    """`resumed`, `failed`, `finished` or `released` (the task had left processing)."""


async def sweep_lapsed_leases(uow_factory: UnitOfWorkFactory, max_resumes: int) -> list[Recovery]:
    """Resume or fail every task whose job stopped renewing its lease; safe in many workers."""
    async with uow_factory() as uow:
        lapsed = await LeaseRepository(uow.connection).lapsed(SWEEP_BATCH)
    recovered = []
    for task_id in lapsed:
        recovery = await _recover(uow_factory, task_id, max_resumes)
        if recovery is not None:
            recovered.append(recovery)
    return recovered


async def _recover(
    uow_factory: UnitOfWorkFactory, task_id: UUID, max_resumes: int
) -> Recovery | None:
    async with uow_factory() as uow:
        state = await uow.tasks.lock(task_id)
        leases = LeaseRepository(uow.connection)
        taken = await leases.take_lapsed(task_id)
        if state is None or taken is None:
            return None  # another watchdog was first, or the holder renewed just in time
        holder, resumes = taken
        action = "released"
        if state.status is Status.PROCESSING:
            pending = await WorkItemRepository(uow.connection).pending_keys(task_id)
            if not pending:
                await finish_task(uow, state)
                action = "finished"
            elif resumes >= max_resumes:
                await _fail(uow, state, _lost_message(resumes + 1, holder))
                action = "failed"
            else:
                await uow.outbox.add_job(
                    JobDispatch(GENERATE_CONTENT, task_id, tuple(pending), "resume")
                )
                action = "resumed"
        if action != "resumed":
            await leases.forget(task_id)  # the task left processing: its loss count starts over
        await uow.commit()
    log.warning("lapsed_lease_recovered", task_id=str(task_id), job_id=holder, action=action)
    return Recovery(task_id, action)


async def fail_for_job(
    uow_factory: UnitOfWorkFactory, task_id: UUID, job_id: str, why: str
) -> bool:
    """RQ's failure callback: fail the task if this job still holds it; True if it did."""
    async with uow_factory() as uow:
        state = await uow.tasks.lock(task_id)
        leases = LeaseRepository(uow.connection)
        if state is None or not await leases.release(task_id, job_id, keep_resumes=False):
            return False
        if state.status is Status.PROCESSING:
            await _fail(uow, state, f"Content generation failed: {why}")
        await uow.commit()
    log.error("content_job_failed", task_id=str(task_id), job_id=job_id, error=why)
    return True


async def _fail(uow: UnitOfWork, state: TaskState, error: str) -> None:
    counts = await uow.items.counts(state.task_id)
    await transition(
        uow,
        state,
        Status.FAILED,
        step="content_generation_failed",
        message=error,
        data={"roadmap_id": state.roadmap_id, **progress_data(counts)},
        error_message=error,
    )


def _lost_message(times: int, holder: str) -> str:
    return (
        f"Content generation stopped: the worker running it was lost {times} times "
        f"(last job {holder}); retry to continue with the items not completed"
    )
