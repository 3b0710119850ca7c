"""The RQ job's wiring: the dotted paths the enqueuer stores in Redis, and the installed context.

RQ imports the job and its failure callback by the paths stored with each job, so a rename that
leaves them dangling would fail every queued job; and a job in a process that installed no
context must refuse to run rather than compose itself from the environment.
"""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest
from rq.utils import import_attribute

from services.worker import jobs
from services.worker.enqueue import FAILURE_CALLBACK, JOB_FUNCTION
from services.worker.jobs import context
from shared.errors import ConfigurationError


def test_the_stored_paths_import_the_job_and_its_callback() -> None:
    assert import_attribute(JOB_FUNCTION) is jobs.generate_content
    assert import_attribute(FAILURE_CALLBACK) is jobs.on_job_failure


def test_a_job_without_an_installed_context_fails_and_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(context, "_installed", None)
    with pytest.raises(ConfigurationError, match="no job context installed"):
        asyncio.run(jobs.generate_content(str(uuid4())))
