"""One RQ worker process, started (N times) and stopped by the `taskrelay worker` supervisor.

It is a standard RQ `Worker` on the content queue, so `rq info` shows it, with four changes:
- SIGTERM is a warm shutdown that also tells the running work horse to hand its job back at the
  next item boundary (SIGUSR1), instead of RQ's default of waiting for the whole job;
  SIGINT is ignored, because the supervisor forwards a Ctrl-C as SIGTERM.
- the process and each work horse die with their parent (`services.lifeline`), so a SIGKILLed
  supervisor leaves no orphan generating behind the reconciler's back.
- a heartbeat that cannot reach Redis while a job runs is logged and skipped: RQ would otherwise
  quit, and its work horse die with it, in the middle of a job that needs only PostgreSQL;
- before any job runs (and before any fork), `bootstrap()` installs the settings, the imported
  content generator and the hand-back flag for the jobs (`services.worker.jobs.install`); each
  work horse inherits them. Nothing else installs them: a job never reads the environment.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from types import FrameType

import redis
from rq import Worker
from rq.executions import Execution
from rq.job import Job

from services.lifeline import announced_parent, die_with_parent
from services.worker.jobs import JobContext, install
from shared.adapters.openai import select_generator
from shared.adapters.unavailable import REDIS, REDIS_LINK_LOST, translated
from shared.config.settings import Settings
from shared.errors import ConfigurationError, DependencyUnavailable
from shared.observability.logging import configure_logging, get_logger
from shared.observability.metrics import write_files_as
from shared.observability.tracing import configure_tracing

log = get_logger(__name__)

HANDBACK_SIGNAL = signal.SIGUSR1
_handback = threading.Event()
"""Set in a work horse when its RQ worker is shutting down; the job checks it at boundaries."""


def _request_handback(_signum: int, _frame: FrameType | None) -> None:
    _handback.set()


def handback_requested() -> bool:
    return _handback.is_set()


class ContentWorker(Worker):
    """An RQ worker whose warm shutdown stops the running job at its next item boundary."""

    def _install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, signal.SIG_IGN)

    def handle_warm_shutdown_request(self) -> None:
        super().handle_warm_shutdown_request()  # type: ignore[no-untyped-call]
        if self.horse_pid:
            with contextlib.suppress(ProcessLookupError):  # the horse may have just finished
                os.kill(self.horse_pid, HANDBACK_SIGNAL)

    def maintain_heartbeats(self, job: Job, execution: Execution) -> None:
        try:
            super().maintain_heartbeats(job, execution)
        except REDIS_LINK_LOST as exc:
            log.warning("rq_heartbeat_skipped", job_id=job.id, error=str(exc))

    def setup_work_horse_signals(self) -> None:
        die_with_parent(self.pid)  # still this RQ worker's PID, as the horse is its fork
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(HANDBACK_SIGNAL, _request_handback)


def bootstrap(settings: Settings) -> ContentWorker:
    """The composition root of an RQ worker process."""
    generator = select_generator(settings)
    install(JobContext(settings, generator, handback_requested))
    write_files_as(os.getpid())  # this process's work horses add to one set of metric files
    connection = redis.Redis.from_url(settings.redis.url)
    return ContentWorker([settings.worker.queue_name], connection=connection)


def main() -> int:
    die_with_parent(announced_parent())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C reaches the supervisor too
    try:
        settings = Settings.from_env()
        configure_logging("worker-rq", settings.logging)
        configure_tracing("worker")
        with translated(REDIS, settings.redis.url, any_error=True):
            worker = bootstrap(settings)
            worker.work(logging_level=logging.getLevelName(logging.getLogger().level))
    except (ConfigurationError, DependencyUnavailable) as exc:
        print(f"taskrelay worker (rq): {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
