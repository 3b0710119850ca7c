"""The one owner of "nothing stays stuck" (docs/protocol.md §8a): the reconciler's decisions.

Every `pending` or `processing` task must have live work: a lease held by a live job, or a job
dispatch on its way (in the outbox, in RabbitMQ, or queued in RQ). Whatever a fault took (the
job, its message, its RQ queue, its failure callback, its worker), the reconciler, run by every
worker, finds the task without live work and gives it work again:

- `judge` decides from the database's facts (`shared.adapters.postgres.liveness`) and RQ's word on
  the job whether a task still has live work; it is pure, so each rule has a unit test.
- `Reconciler.sweep` pages through the candidates and recovers the ones judged lost, each in its
  own transaction under the task's row lock taken with SKIP LOCKED (one worker acts per task),
  re-checking that the lease has not changed since it was read. A recovery takes the lease back
  (its generation grows, fencing out any job that still thinks it holds it) and writes, through
  the state machine and the outbox, a `resume` job dispatch with its own `message_id` and a
  `content_generation_resumed` notification, so the browser sees that work resumed. A task with
  nothing left pending is finished; one recovered `max_recoveries` times in a row without an
  item done is failed, with an `error_message` that says why.

Ages count only the time the reconciler's worker has seen its dependencies answer
(`healthy_for`): a job message cannot be taken while RabbitMQ is away, so the wait for it
starts again when RabbitMQ is back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from uuid import UUID

from shared.domain import JobDispatch, Status, TaskState, clip_error
from shared.domain.messages import GENERATE_CONTENT
from shared.domain.records import WorkFacts
from shared.observability.logging import get_logger
from shared.service.ports import AbstractUnitOfWork, AbstractUnitOfWorkFactory
from shared.service.progress import finish_task, progress_data
from shared.service.transitions import emit_event, transition

log = get_logger(__name__)

PAGE = 100


class JobStatus(StrEnum):
    """What RQ says of a job, reduced to what matters for liveness."""

    QUEUED = "queued"
    """Waiting for an RQ worker (queued, deferred or scheduled)."""
    STARTED = "started"
    ENDED = "ended"
    """Finished, failed, stopped or cancelled."""
    GONE = "gone"
    """Unknown to Redis: lost (Redis restarted empty) or long expired."""


@dataclass(frozen=True, slots=True)
class JobState:
    status: JobStatus
    started_for: float | None = None
    """Seconds since an RQ worker started it (STARTED only)."""


JobStates = Callable[[Sequence[str]], Awaitable[Mapping[str, JobState]]]
"""Asks RQ about jobs by id; a job id it does not return is GONE."""


def judge(
    facts: WorkFacts, jobs: Mapping[str, JobState], *, healthy_for: float, stale_after: float
) -> str | None:
    """None when the task has live work; otherwise why it has none (for the log and the task).

    `facts` is a task with no live lease (the database lists no other).
    """

    def fresh(age: float | None) -> bool:
        return age is not None and min(age, healthy_for) < stale_after

    def job(job_id: str) -> JobState:
        return jobs.get(job_id, JobState(JobStatus.GONE))

    if facts.holder is not None:
        holder = job(facts.holder)
        if holder.status is JobStatus.STARTED and fresh(facts.lapsed_for):
            return None  # its job runs: it lost the database for a while and will renew
        return f"the job running it ({facts.holder}) stopped renewing its lease"
    if facts.dispatch_waiting:
        return None  # the relay will publish it
    if facts.dispatch_parked:
        return "its job dispatch could not be published"
    if facts.dispatch_id is not None and not facts.dispatch_taken:
        if fresh(facts.published_for):
            return None  # in RabbitMQ, on its way to a worker
        return "its job message was never taken by a worker (dead-lettered or lost)"
    if facts.job_id is None:
        return "it has no job dispatch"
    state = job(facts.job_id)
    if state.status is JobStatus.QUEUED:
        return None
    if state.status is JobStatus.STARTED:
        if fresh(state.started_for):
            return None  # started, not yet at its first boundary (or waiting for PostgreSQL)
        return f"its job ({facts.job_id}) started but never took the task"
    if state.status is JobStatus.GONE:
        return f"its job ({facts.job_id}) was lost from Redis"
    return f"its job ({facts.job_id}) ended without finishing it"


class Action(StrEnum):
    RESUMED = "resumed"
    FINISHED = "finished"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Recovery:
    task_id: UUID
    action: Action
    why: str


class Reconciler:
    """Finds the tasks without live work and gives them work again; safe in many workers."""

    def __init__(
        self,
        uow_factory: AbstractUnitOfWorkFactory,
        job_states: JobStates,
        *,
        stale_after: float,
        max_recoveries: int,
        quiet_seconds: float = 5.0,
    ) -> None:
        self._uow_factory = uow_factory
        self._job_states = job_states
        self._stale_after = stale_after
        self._max_recoveries = max_recoveries
        self._quiet = quiet_seconds
        """A task changed this recently is busy: not worth asking about yet."""

    async def sweep(self, healthy_for: float) -> list[Recovery]:
        """One pass over every candidate; what was recovered."""
        recovered: list[Recovery] = []
        cursor = None
        while True:
            async with self._uow_factory() as uow:
                page = await uow.liveness.without_live_lease(self._quiet, PAGE, cursor)
            if not page:
                return recovered
            cursor = page[-1].cursor
            ids = {i for f in page for i in (f.holder, f.job_id) if i is not None}
            jobs = await self._job_states(sorted(ids)) if ids else {}
            for facts in page:
                why = judge(facts, jobs, healthy_for=healthy_for, stale_after=self._stale_after)
                if why is not None and (done := await self._recover(facts, why)) is not None:
                    recovered.append(done)

    async def _recover(self, facts: WorkFacts, why: str) -> Recovery | None:
        async with self._uow_factory() as uow:
            state = await uow.tasks.lock_unless_busy(facts.task_id)
            if state is None or state.status is not facts.status:
                return None  # busy (a job's boundary, a request, another reconciler) or moved on
            recoveries = await uow.leases.take_back(facts.task_id, facts.generation)
            if recoveries is None:
                return None  # a job took or renewed the lease since the facts were read
            action = await self._act(uow, state, recoveries, why)
            if action is not Action.RESUMED:
                await uow.leases.forget(facts.task_id)
            await uow.commit()
        log.warning(
            "task_recovered",
            task_id=str(facts.task_id),
            action=str(action),
            why=why,
            recoveries=recoveries,
        )
        return Recovery(facts.task_id, action, why)

    async def _act(
        self, uow: AbstractUnitOfWork, state: TaskState, recoveries: int, why: str
    ) -> Action:
        pending = await uow.items.pending_keys(state.task_id)
        if not pending and state.status is Status.PROCESSING:
            await finish_task(uow, state)
            return Action.FINISHED
        counts = await uow.items.counts(state.task_id)
        data = {"roadmap_id": state.roadmap_id, "reason": why, **progress_data(counts)}
        if recoveries > self._max_recoveries:
            error = (
                f"Content generation stopped: no progress after {recoveries - 1} recoveries "
                f"(last: {why}); retry to continue with the items not completed"
            )
            await fail(uow, state, error, data)
            return Action.FAILED
        dispatch = JobDispatch(GENERATE_CONTENT, state.task_id, tuple(pending), "resume")
        await emit_event(
            uow,
            state,
            step="content_generation_resumed",
            message=f"Resuming content generation after a fault ({len(pending)} items left)",
            data={**data, "recovery": recoveries},
            job=dispatch,
        )
        return Action.RESUMED


async def fail_for_job(
    uow_factory: AbstractUnitOfWorkFactory, task_id: UUID, job_id: str, why: str
) -> bool:
    """RQ's failure callback: fail the task if this job still holds it; True if it did."""
    async with uow_factory() as uow:
        state = await uow.tasks.lock(task_id)
        lease = await uow.leases.held_by(task_id, job_id)
        if state is None or lease is None:
            return False
        await uow.leases.release(lease, keep_recoveries=False)
        if state.status is Status.PROCESSING:
            counts = await uow.items.counts(task_id)
            data = {"roadmap_id": state.roadmap_id, **progress_data(counts)}
            await fail(uow, state, f"Content generation failed: {why}", data)
        await uow.commit()
    log.error("content_job_failed", task_id=str(task_id), job_id=job_id, error=why)
    return True


async def fail(
    uow: AbstractUnitOfWork, state: TaskState, error: str, data: dict[str, object]
) -> None:
    """`pending`/`processing` -> `failed`, saying why, through the state machine."""
    error = clip_error(error)  # a reason can be an RQ exception's text: the message carries it
    if state.status is Status.PENDING:  # the state machine fails only a task that started
        started = await transition(
            uow,
            state,
            Status.PROCESSING,
            step="content_generation_started",
            message="Content generation could not start",
            data=data,
        )
        state = started.state
    await transition(
        uow,
        state,
        Status.FAILED,
        step="content_generation_failed",
        message=error,
        data=data,
        error_message=error,
    )
