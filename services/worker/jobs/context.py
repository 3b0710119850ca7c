"""What a job needs: from its RQ worker process (installed by its composition root), and the
trace context its enqueuer stored with it.

RQ calls a job by its dotted path with the job's kwargs only, so the settings, the imported
content generator and the hand-back flag cannot come through a constructor: the RQ worker
process's `bootstrap()` (`services.worker.rq_process`) installs them here before its first job,
and each work horse, a fork of that process, inherits them. There is no fallback: a job run by
a process that installed nothing (a plain `rq worker`, say) fails with `ConfigurationError`
instead of quietly composing itself from the environment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rq.job import Job

from shared.config.settings import Settings
from shared.domain.content import ContentGenerator
from shared.errors import ConfigurationError


@dataclass(frozen=True, slots=True)
class JobContext:
    settings: Settings
    generator: ContentGenerator
    handback_requested: Callable[[], bool]
    """True once the RQ worker asked its running job to hand the rest back (a warm shutdown)."""


_installed: JobContext | None = None


def install(context: JobContext) -> None:
    """Called by the RQ worker process's composition root, before any job runs (and forks)."""
    global _installed
    _installed = context


def installed() -> JobContext:
    """The context the process installed, or ConfigurationError when it installed none."""
    if _installed is None:
        raise ConfigurationError(
            "no job context installed: run jobs with `taskrelay worker`, whose RQ processes "
            "install the settings and the content generator before their first job"
        )
    return _installed


def trace_of(job: Job | None) -> dict[str, str]:
    """The trace context the consumer stored with the job (none for an operator's own job)."""
    carried = job.meta.get("trace") if job is not None else None
    return carried if isinstance(carried, dict) else {}
