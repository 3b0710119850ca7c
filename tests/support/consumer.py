"""The worker's job consumer, in-process, on a vhost and an RQ queue of the test's own: what the
consumer tests share (`tests/integration/test_worker_recovery.py`,
`test_consumer_schema_version.py`).

The vhost is its own so that the only job messages it reads are the test's: a system an e2e
module runs on the session's vhost may leave some in its job queue."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from uuid import uuid4

import aio_pika
import redis
from aio_pika.abc import AbstractRobustConnection
from rq import Queue

from harness.resources import Resources, create_vhost, delete_vhost, run_id
from services.worker.consumer import JobConsumer
from services.worker.enqueue import JobQueue
from shared.adapters.postgres import UnitOfWorkFactory
from shared.config.settings import Settings


@dataclass
class OwnConsumer:
    consumer: JobConsumer
    connection: AbstractRobustConnection
    """A broker connection of the test's own, to publish and read the dead-letter queue."""
    rq_queue: Queue
    """The RQ queue the consumer enqueues to, deleted at the end."""


@contextlib.asynccontextmanager
async def own_consumer(
    resources: Resources,
    settings: Settings,
    uow_factory: UnitOfWorkFactory,
    settled: Callable[[str], None] = lambda _: None,
) -> AsyncIterator[OwnConsumer]:
    """A started consumer on a fresh vhost, enqueuing to a fresh RQ queue; stopped and cleaned
    up after."""
    queue_name = f"test-consumer-{uuid4().hex[:8]}"
    local = dataclasses.replace(
        settings, worker=dataclasses.replace(settings.worker, queue_name=queue_name)
    )
    vhost = f"taskrelay-consumer-{run_id()}"
    async with contextlib.AsyncExitStack() as cleanup:
        cleanup.callback(delete_vhost, vhost)  # also after a half-made one
        amqp_url = await asyncio.to_thread(create_vhost, vhost)
        client = redis.Redis.from_url(resources.redis_url)
        cleanup.callback(client.close)
        cleanup.callback(Queue(queue_name, connection=client).delete, delete_jobs=True)
        connection = await aio_pika.connect_robust(amqp_url)
        cleanup.push_async_callback(connection.close)
        consumer = JobConsumer(uow_factory, JobQueue(client, local), prefetch=4, settled=settled)
        await consumer.start(await connection.channel())
        yield OwnConsumer(consumer, connection, Queue(queue_name, connection=client))
