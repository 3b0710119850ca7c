"""The RQ side of the worker: enqueueing a generation job, the job itself, its failure callback.

RQ forks a work horse per job and runs a coroutine job with `asyncio.run`, so every job gets a
new event loop: the job creates its own engine (after the fork, inside that loop) and disposes
of it before returning; nothing async outlives a job. What a job needs from its process (the
settings, the imported generator, the hand-back flag) is installed once by the RQ worker
process's `bootstrap()` and inherited by each fork.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any
from uuid import UUID

import redis
from rq import Callback, Queue, get_current_job
from rq.exceptions import AbandonedJobError, DuplicateJobError
from rq.job import Job

from shared.content import ContentGenerator, load_generator
from shared.db import UnitOfWorkFactory, create_engine
from shared.db.errors import connection_lost
from shared.dependencies import REDIS, unavailable
from shared.errors import DependencyUnavailable
from shared.logging import bound_context, get_logger
from shared.service.generation import ContentJob
from shared.service.recovery import fail_for_job
from shared.settings import Settings
from shared.tracing import trace_headers, traced

log = get_logger(__name__)

JOB_FUNCTION = "services.worker.jobs.generate_content"
FAILURE_CALLBACK = "services.worker.jobs.on_job_failure"


@dataclass(frozen=True, slots=True)
class JobContext:
    settings: Settings
    generator: ContentGenerator
    handback_requested: Callable[[], bool]


_context: JobContext | None = None


def install(context: JobContext) -> None:
    """Called by the RQ worker process's composition root, before any job runs."""
    global _context
    _context = context


def _current_context() -> JobContext:
    if _context is None:  # a plain `rq worker` started by an operator: read the environment
        settings = Settings.from_env()
        install(JobContext(settings, load_generator(settings.worker.content_generator), _never))
    assert _context is not None
    return _context


def _never() -> bool:
    return False


def job_id_for(message_id: UUID) -> str:
    """One RQ job per job message: redeliveries of the message map to the same job."""
    return f"generate-{message_id}"


class JobQueue:
    """Enqueues generation jobs on the RQ queue; redis errors become DependencyUnavailable."""

    def __init__(self, connection: redis.Redis, settings: Settings) -> None:
        self._queue = Queue(settings.worker.queue_name, connection=connection)
        self._settings = settings

    def enqueue(self, task_id: UUID, message_id: UUID) -> str:
        """Enqueue (once) the job of this message; returns its id. Blocking: run in a thread."""
        job_id = job_id_for(message_id)
        try:
            self._queue.enqueue_call(
                JOB_FUNCTION,
                kwargs={"task_id": str(task_id)},
                job_id=job_id,
                unique=True,
                timeout=self._settings.worker.job_timeout_seconds,
                result_ttl=24 * 3600,
                failure_ttl=7 * 24 * 3600,
                description=f"generate content of task {task_id}",
                meta={"message_id": str(message_id), "trace": trace_headers()},
                on_failure=Callback(FAILURE_CALLBACK),
            )
        except DuplicateJobError:
            log.info("rq_job_already_enqueued", job_id=job_id)
        except redis.RedisError as exc:
            raise unavailable(REDIS, self._settings.redis.url, exc) from exc
        return job_id


async def generate_content(task_id: str) -> dict[str, Any]:
    """The RQ job: generate the task's pending items (see shared.service.generation)."""
    context = _current_context()
    job = get_current_job()
    holder = job.id if job is not None else f"local-{task_id}"
    message_id = job.meta.get("message_id") if job is not None else None
    with (
        bound_context(task_id=task_id, job_id=holder, message_id=message_id),
        traced("generate_content", _trace_of(job)),  # its notifications carry the trace on
    ):
        worker = context.settings.worker
        engine = create_engine(context.settings.database, pool_size=2)
        try:
            outcome = await ContentJob(
                UnitOfWorkFactory(engine),
                context.generator,
                task_id=UUID(task_id),
                holder=holder,
                item_timeout=worker.item_timeout_seconds,
                lease_seconds=worker.lease_seconds,
                should_stop=context.handback_requested,
                outage_patience=worker.outage_patience_seconds,
            ).run()
        finally:
            await engine.dispose()
        log.info("content_job_done", stop=str(outcome.stop), generated=outcome.generated)
        return {"stop": str(outcome.stop), "generated": outcome.generated}


def on_job_failure(
    job: Job,
    _connection: redis.Redis,
    exc_type: type[BaseException] | None,
    exc_value: BaseException | None,
    _traceback: TracebackType | None,
) -> None:
    """RQ's failure callback: the job raised; fail its task if the job still holds it.

    A job that lost a dependency for longer than its patience, or whose worker died
    (`AbandonedJobError`), did nothing wrong: the reconciler gives its task work again. This
    callback is a fast path, not a guarantee: when it cannot reach PostgreSQL either, the
    reconciler finds the task without live work all the same.
    """
    task_id = job.kwargs.get("task_id")
    why = str(exc_value) or (exc_type.__name__ if exc_type else "unknown error")
    with bound_context(task_id=task_id, job_id=job.id), traced("job_failed", _trace_of(job)):
        if _is_lost_dependency(exc_value) or isinstance(exc_value, AbandonedJobError):
            log.warning("content_job_interrupted", error=why)
            return
        log.error("content_job_raised", error=why)
        if task_id is not None:
            asyncio.run(_fail(UUID(task_id), job.id, why))


def _trace_of(job: Job | None) -> dict[str, str]:
    """The trace context the consumer stored with the job (none for an operator's own job)."""
    carried = job.meta.get("trace") if job is not None else None
    return carried if isinstance(carried, dict) else {}


def _is_lost_dependency(exc: BaseException | None) -> bool:
    """PostgreSQL (by the unit of work's one test) or Redis went away: not the task's fault."""
    if isinstance(exc, DependencyUnavailable) or connection_lost(exc):
        return True
    return isinstance(exc, redis.ConnectionError | redis.TimeoutError)


async def _fail(task_id: UUID, job_id: str, why: str) -> None:
    engine = create_engine(_current_context().settings.database, pool_size=1)
    try:
        await fail_for_job(UnitOfWorkFactory(engine), task_id, job_id, why)
    finally:
        await engine.dispose()
