"""The worker's job consumer, in-process, on an RQ queue of the test's own: what the consumer
tests share (`tests/integration/test_worker_recovery.py`, `test_consumer_schema_version.py`)."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from uuid import uuid4

import aio_pika
import redis
from aio_pika.abc import AbstractRobustConnection
from rq import Queue

from harness.resources import Resources
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
    """A started consumer enqueuing to a fresh RQ queue; stopped and cleaned up after."""
    queue_name = f"test-consumer-{uuid4().hex[:8]}"
    local = dataclasses.replace(
        settings, worker=dataclasses.replace(settings.worker, queue_name=queue_name)
    )
    client = redis.Redis.from_url(resources.redis_url)
    connection = await aio_pika.connect_robust(resources.amqp_url)
    consumer = JobConsumer(uow_factory, JobQueue(client, local), prefetch=4, settled=settled)
    try:
        await consumer.start(await connection.channel())
        yield OwnConsumer(consumer, connection, Queue(queue_name, connection=client))
    finally:
        Queue(queue_name, connection=client).delete(delete_jobs=True)
        client.close()
        await connection.close()
