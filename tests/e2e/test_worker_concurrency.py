"""Several `taskrelay worker` processes at once, with every job message delivered twice.

Two workers (two RQ processes each) share the job queue; while they generate, each task's job
message is published again with the same `message_id`, so the duplicate usually reaches the other
worker while the first job still runs. The inbox, the RQ job id and the task lease between them
must make every item of every task generated exactly once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from uuid import UUID

import pytest

from harness import generators
from harness.processes import Process
from harness.relay import start_relay
from harness.resources import Resources
from harness.worker import start_worker
from shared.adapters.postgres import UnitOfWorkFactory
from tests.support import tasks
from tests.support.republish import outbox_rows, publish
from tests.support.worker import wait_for_status

pytestmark = pytest.mark.slow
TASKS = 4
CONCEPTS = 12


@pytest.fixture(name="relay", scope="module")
def relay_fixture(resources: Resources) -> Iterator[Process]:
    proc = start_relay(resources.env(), name="relay-for-worker-concurrency")
    yield proc
    proc.stop()


async def create(uow_factory: UnitOfWorkFactory, n: int) -> UUID:
    concepts = [f"p{n}-{i:02d}" for i in range(CONCEPTS)]
    return await tasks.new_task(uow_factory, "worker-concurrency", concepts, ("tutorial", "quiz"))


async def test_two_workers_and_duplicate_messages_generate_each_item_once(
    resources: Resources, uow_factory: UnitOfWorkFactory, relay: Process
) -> None:
    env = resources.env(
        TASKRELAY_CONTENT_GENERATOR="harness.generators:counting",
        TASKRELAY_TEST_GENERATOR_DELAY="0.05",
    )
    with (
        start_worker(env, processes=2, name="worker-one"),
        start_worker(env, processes=2, name="worker-two"),
    ):
        created = [await create(uow_factory, n) for n in range(TASKS)]
        for task_id in created:
            await publish(resources.amqp_url, (await outbox_rows(uow_factory, task_id, "job"))[:1])
        rows = await asyncio.gather(*(wait_for_status(uow_factory, t, within=120) for t in created))

    assert [row.status for row in rows] == ["completed"] * TASKS
    for task_id in created:
        calls = generators.calls(resources.redis_url, task_id)
        assert len(calls) == CONCEPTS * 2
        assert set(calls.values()) == {1}
