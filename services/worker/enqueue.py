"""Enqueueing generation jobs on RQ, in the consumer's asyncio process.

The consumer calls `JobQueue.enqueue` (blocking: from a thread) once per job message it takes
in; a redelivered message maps to the same RQ job id, so it is enqueued once. The job and its
failure callback are named by dotted path, not imported: they run in the RQ worker processes
(`services.worker.jobs`), and the paths, stored in Redis with every job, must stay importable
there across releases.
"""

from __future__ import annotations

from uuid import UUID

import redis
from rq import Callback, Queue
from rq.exceptions import DuplicateJobError

from shared.adapters.unavailable import REDIS, translated
from shared.config.settings import Settings
from shared.observability.logging import get_logger
from shared.observability.tracing import trace_headers

log = get_logger(__name__)

JOB_FUNCTION = "services.worker.jobs.generate_content"
FAILURE_CALLBACK = "services.worker.jobs.on_job_failure"
RESULT_TTL_SECONDS = 24 * 3600
FAILURE_TTL_SECONDS = 7 * 24 * 3600
"""How long a failed job stays in RQ's failed registry for an operator to read."""


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
        with translated(REDIS, self._settings.redis.url, any_error=True):
            try:
                self._queue.enqueue_call(
                    JOB_FUNCTION,
                    kwargs={"task_id": str(task_id)},
                    job_id=job_id,
                    unique=True,
                    timeout=self._settings.worker.job_timeout_seconds,
                    result_ttl=RESULT_TTL_SECONDS,
                    failure_ttl=FAILURE_TTL_SECONDS,
                    description=f"generate content of task {task_id}",
                    meta={"message_id": str(message_id), "trace": trace_headers()},
                    on_failure=Callback(FAILURE_CALLBACK),
                )
            except DuplicateJobError:
                log.info("rq_job_already_enqueued", job_id=job_id)
        return job_id
