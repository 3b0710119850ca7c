"""The worker's job consumer meets a message shape it does not know (docs/protocol.md §11): it
dead-letters it, with nothing left unacked, and goes on with the next message, which it reads.
Real RabbitMQ, PostgreSQL and Redis; the consumer is the worker's own."""

from __future__ import annotations

import json
from uuid import UUID, uuid4

import aio_pika
import pytest

from harness.resources import Resources
from harness.wait import wait_until
from services.worker.enqueue import job_id_for
from shared.adapters.postgres import UnitOfWorkFactory
from shared.adapters.rabbitmq.topology import DEAD_JOB_QUEUE, JOB_QUEUE
from shared.config.settings import Settings
from tests.support import tasks
from tests.support.consumer import own_consumer

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_an_unknown_version_is_dead_lettered_and_the_next_message_is_read(
    resources: Resources, settings: Settings, uow_factory: UnitOfWorkFactory
) -> None:
    settled: list[str] = []
    async with own_consumer(resources, settings, uow_factory, settled.append) as own:
        connection, consumer = own.connection, own.consumer
        task_id = await tasks.new_task(uow_factory, "schema-version", ("a",), types=("quiz",))
        body = json.dumps({"task_id": str(task_id), "job": "generate_content", "items": []})
        channel = await connection.channel()
        exchange = await channel.get_exchange("taskrelay")
        newer, known = uuid4(), uuid4()
        for message_id, version in ((newer, 2), (known, 1)):
            await exchange.publish(
                aio_pika.Message(
                    body.encode(),
                    message_id=str(message_id),
                    headers={"x-schema-version": version, "x-task-id": str(task_id)},
                ),
                routing_key="job.generate_content",
            )

        await wait_until(lambda: _recorded(uow_factory, known), within=10, what="the v1 job")
        dead = await channel.get_queue(DEAD_JOB_QUEUE)

        async def dead_lettered() -> aio_pika.abc.AbstractIncomingMessage | None:
            while (message := await dead.get(no_ack=True, fail=False)) is not None:
                if message.message_id == str(newer):
                    return message
            return None

        letter = await wait_until(dead_lettered, within=10, interval=0.1, what="the dead letter")
        await consumer.stop(drain_seconds=5)
        assert letter.headers["x-schema-version"] == 2  # kept as sent, for a worker that reads it
        assert not await _recorded(uow_factory, newer)
        assert own.rq_queue.job_ids == [job_id_for(known)]
        assert sorted(settled) == ["acked", "dead_lettered"]
        # Nothing held unacked: with the consumer gone, the work queue has nothing to give back.
        jobs = await channel.declare_queue(JOB_QUEUE, passive=True)
        assert jobs.declaration_result.message_count == 0


async def _recorded(uow_factory: UnitOfWorkFactory, message_id: UUID) -> bool:
    async with uow_factory() as uow:
        return await uow.inbox.seen(message_id)
