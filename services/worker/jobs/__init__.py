"""What RQ runs in an RQ worker process, under the dotted paths the enqueuer stores in Redis.

The enqueuer (`services.worker.enqueue`, in the consumer's process) names the job and its
failure callback by these paths, and RQ imports them by path when it runs a job, possibly one
enqueued by an older release: `services.worker.jobs.generate_content` and
`services.worker.jobs.on_job_failure` stay importable here whatever module holds them.
"""

from services.worker.jobs.context import JobContext, install
from services.worker.jobs.failure import on_job_failure
from services.worker.jobs.generate import generate_content

__all__ = ["JobContext", "generate_content", "install", "on_job_failure"]
