"""The job RQ runs in a work horse: generate a task's pending items.

RQ forks a work horse per job and runs a coroutine job with `asyncio.run`, so every job gets a
new event loop: the job creates its own engine (after the fork, inside that loop) and disposes
of it before returning; nothing async outlives a job. The work itself is
`shared.service.generation.ContentJob`; this module binds the job's identity into the log
context and its trace, and hands the service what the process installed (`jobs.context`).
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from rq import get_current_job

from services.worker.jobs.context import installed, trace_of
from shared.adapters.postgres import UnitOfWorkFactory
from shared.observability import spans
from shared.observability.logging import bound_context, get_logger
from shared.observability.tracing import traced
from shared.service.generation import ContentJob, Pace

log = get_logger(__name__)


async def generate_content(task_id: str) -> dict[str, Any]:
    """The RQ job: generate the task's pending items (see shared.service.generation)."""
    try:
        return await _generate(task_id)
    finally:
        spans.flush()  # the work horse ends with os._exit: its spans go out now or never


async def _generate(task_id: str) -> dict[str, Any]:
    context = installed()
    job = get_current_job()
    holder = job.id if job is not None else f"local-{task_id}"
    message_id = job.meta.get("message_id") if job is not None else None
    with (
        bound_context(task_id=task_id, job_id=holder, message_id=message_id),
        traced("generate_content", trace_of(job)),  # its notifications carry the trace on
    ):
        worker = context.settings.worker
        uow_factory = UnitOfWorkFactory(context.settings.database, pool_size=2)
        try:
            outcome = await ContentJob(
                uow_factory,
                context.generator,
                task_id=UUID(task_id),
                holder=holder,
                item_timeout=worker.item_timeout_seconds,
                lease_seconds=worker.lease_seconds,
                should_stop=context.handback_requested,
                outage_patience=worker.outage_patience_seconds,
                pace=Pace(worker.item_concurrency, worker.slice_seconds),
            ).run()
        finally:
            await uow_factory.close()
        log.info("content_job_done", stop=str(outcome.stop), generated=outcome.generated)
        return {"stop": str(outcome.stop), "generated": outcome.generated}
