"""The job RQ runs in a work horse: generate a task's pending items.

RQ forks a work horse per job and runs a coroutine job with `asyncio.run`, so every job gets a
new event loop: the job creates its own pool (after the fork, inside that loop) and closes it
before returning; nothing async outlives a job. The work itself is
`shared.service.generation.ContentJob`; this module is its composition root: it binds the job's
identity into the log context and its trace, builds the units of work the job and its lease
heartbeat run on, and hands the service what the process installed (`jobs.context`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

from rq import get_current_job

from services.worker.jobs.context import installed, trace_of
from shared.adapters.postgres import UnitOfWorkFactory
from shared.config.settings import DatabaseSettings
from shared.observability import spans
from shared.observability.logging import bound_context, get_logger
from shared.observability.tracing import traced
from shared.service.generation import ContentJob, Pace
from shared.service.lease_keeper import KeepLease, LeaseKeeper

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
                keep_lease=lease_keeper(context.settings.database),
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


def lease_keeper(database: DatabaseSettings) -> KeepLease:
    """A job's lease heartbeat: a `LeaseKeeper` thread renewing through a one-connection pool
    of its own. Its own because an asyncpg pool belongs to the event loop that made it (the
    keeper's thread runs another), and apart from the job's pool so that items in flight
    holding every connection of it never delay a renewal."""

    @asynccontextmanager
    async def own_uows() -> AsyncIterator[UnitOfWorkFactory]:
        uow_factory = UnitOfWorkFactory(database, pool_size=1)
        try:
            yield uow_factory
        finally:
            await uow_factory.close()

    return LeaseKeeper.keeping(own_uows)
