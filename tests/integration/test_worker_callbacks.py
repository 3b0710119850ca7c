"""RQ's failure callback, called as RQ calls it, against the real PostgreSQL and Redis.

`on_job_failure` runs synchronously in an RQ process and opens its own event loop, so the tests
call it from a thread. What it must do: fail the task of a job that raised while holding it,
leave alone a task whose job was abandoned (its worker died: the reconciler's case), and leave
a job that lost a dependency to the reconciler.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from uuid import UUID, uuid4

import asyncpg
import pytest
import redis
from rq.exceptions import AbandonedJobError
from rq.job import Job
from rq.timeouts import JobTimeoutException

from harness.resources import Resources
from harness.worker import task_row
from services.worker.enqueue import JOB_FUNCTION, job_id_for
from services.worker.jobs import JobContext, install, on_job_failure
from shared.adapters.postgres import UnitOfWorkFactory
from shared.config.settings import Settings
from shared.domain.content import placeholder_generator
from tests.support import tasks


@pytest.fixture(name="connection")
def connection_fixture(resources: Resources, settings: Settings) -> Iterator[redis.Redis]:
    install(JobContext(settings, placeholder_generator, lambda: False))
    client = redis.Redis.from_url(resources.redis_url)
    yield client
    client.close()


async def running_task(uow_factory: UnitOfWorkFactory, holder: str) -> UUID:
    """A task in processing whose lease `holder` holds, as when its job is running."""
    task_id = await tasks.new_task(uow_factory, "callbacks", ["a", "b"], types=("quiz",))
    await tasks.start(uow_factory, task_id, holder=holder)
    return task_id


def rq_job(connection: redis.Redis, task_id: UUID, job_id: str) -> Job:
    return Job.create(
        JOB_FUNCTION, kwargs={"task_id": str(task_id)}, id=job_id, connection=connection
    )


async def fail(job: Job, connection: redis.Redis, exc: BaseException) -> None:
    await asyncio.to_thread(on_job_failure, job, connection, type(exc), exc, None)


async def test_a_job_that_raised_while_holding_its_task_fails_it(
    uow_factory: UnitOfWorkFactory, connection: redis.Redis
) -> None:
    job_id = job_id_for(uuid4())
    task_id = await running_task(uow_factory, job_id)

    await fail(rq_job(connection, task_id, job_id), connection, JobTimeoutException("too slow"))

    row = await task_row(uow_factory, task_id)
    assert (row.status, row.error_message) == ("failed", "Content generation failed: too slow")


async def test_an_abandoned_job_is_left_to_the_reconciler(
    uow_factory: UnitOfWorkFactory, connection: redis.Redis
) -> None:
    job_id = job_id_for(uuid4())
    task_id = await running_task(uow_factory, job_id)

    await fail(rq_job(connection, task_id, job_id), connection, AbandonedJobError())

    assert (await task_row(uow_factory, task_id)).status == "processing"


async def test_a_job_that_raised_after_its_task_was_taken_back_changes_nothing(
    uow_factory: UnitOfWorkFactory, connection: redis.Redis
) -> None:
    task_id = await running_task(uow_factory, "generate-resumed-job")

    await fail(rq_job(connection, task_id, job_id_for(uuid4())), connection, RuntimeError("bug"))

    assert (await task_row(uow_factory, task_id)).status == "processing"


async def test_a_job_that_lost_the_database_is_left_to_its_lease(
    uow_factory: UnitOfWorkFactory, connection: redis.Redis
) -> None:
    job_id = job_id_for(uuid4())
    task_id = await running_task(uow_factory, job_id)
    # What asyncpg raises when the server goes away under a statement.
    lost = asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation")

    await fail(rq_job(connection, task_id, job_id), connection, lost)

    assert (await task_row(uow_factory, task_id)).status == "processing"
    async with uow_factory() as uow:  # still held: the reconciler takes it if it lapses
        assert await uow.leases.held_by(task_id, job_id) is not None
