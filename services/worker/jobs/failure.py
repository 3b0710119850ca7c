"""RQ's failure callback: a job raised, so fail its task if the job still holds it.

RQ calls it synchronously in the RQ worker process or its work horse (after the job's own event
loop is gone), so it opens a loop of its own for the one transaction it writes. It is a fast
path, not a guarantee: a job that lost a dependency for longer than its patience, or whose
worker died (`AbandonedJobError`), did nothing wrong and is left to the reconciler; and when
the callback cannot reach PostgreSQL either, the reconciler finds the task without live work
all the same (docs/worker.md).
"""

from __future__ import annotations

import asyncio
from types import TracebackType
from uuid import UUID

import redis
from rq.exceptions import AbandonedJobError
from rq.job import Job

from services.worker.jobs.context import installed, trace_of
from shared.adapters.postgres import UnitOfWorkFactory
from shared.adapters.unavailable import connection_lost, redis_unreachable
from shared.errors import DependencyUnavailable
from shared.observability.logging import bound_context, get_logger
from shared.observability.tracing import traced
from shared.service.recovery import fail_for_job

log = get_logger(__name__)


def on_job_failure(
    job: Job,
    _connection: redis.Redis,
    exc_type: type[BaseException] | None,
    exc_value: BaseException | None,
    _traceback: TracebackType | None,
) -> None:
    """Fail the task of a job that raised while holding it; leave interruptions alone."""
    task_id = job.kwargs.get("task_id")
    why = str(exc_value) or (exc_type.__name__ if exc_type else "unknown error")
    with bound_context(task_id=task_id, job_id=job.id), traced("job_failed", trace_of(job)):
        if _is_lost_dependency(exc_value) or isinstance(exc_value, AbandonedJobError):
            log.warning("content_job_interrupted", error=why)
            return
        log.error("content_job_raised", error=why)
        if task_id is not None:
            asyncio.run(_fail(UUID(task_id), job.id, why))


def _is_lost_dependency(exc: BaseException | None) -> bool:
    """PostgreSQL (by the unit of work's one test) or Redis went away: not the task's fault."""
    if isinstance(exc, DependencyUnavailable) or connection_lost(exc):
        return True
    return exc is not None and redis_unreachable(exc)


async def _fail(task_id: UUID, job_id: str, why: str) -> None:
    uow_factory = UnitOfWorkFactory(installed().settings.database, pool_size=1)
    try:
        await fail_for_job(uow_factory, task_id, job_id, why)
    finally:
        await uow_factory.close()
