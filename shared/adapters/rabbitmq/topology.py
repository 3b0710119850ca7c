"""Declare the broker topology idempotently (docs/protocol.md §11).

- `taskrelay`: the durable topic exchange every outbox row is published to.
- `taskrelay.jobs`: the project's durable quorum work queue, bound to `job.#`; a message the
  worker rejects, or one delivered more than `JOB_DELIVERY_LIMIT` times, is dead-lettered.
- `taskrelay.dead-letter`: a durable fanout exchange, and `taskrelay.jobs.dead`, the durable
  queue that keeps what was dead-lettered for an operator to inspect.

Every process that publishes or consumes calls `declare_topology` at start; repeating it is
harmless, and a deployment that pre-created the same names with the same arguments is fine.
"""

from __future__ import annotations

from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from shared.domain.messages import EXCHANGE, JOB_PREFIX

JOB_QUEUE = "taskrelay.jobs"
DEAD_LETTER_EXCHANGE = "taskrelay.dead-letter"
DEAD_JOB_QUEUE = "taskrelay.jobs.dead"
JOB_DELIVERY_LIMIT = 5
"""Redeliveries of one job message (crash loops) before the broker dead-letters it."""


@dataclass(frozen=True, slots=True)
class Topology:
    """What publishers and consumers use; the dead-letter side is the broker's to route."""

    exchange: AbstractExchange
    job_queue: AbstractQueue


async def declare_topology(channel: AbstractChannel) -> Topology:
    exchange = await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)
    dlx = await channel.declare_exchange(
        DEAD_LETTER_EXCHANGE, aio_pika.ExchangeType.FANOUT, durable=True
    )
    dead = await channel.declare_queue(
        DEAD_JOB_QUEUE, durable=True, arguments={"x-queue-type": "quorum"}
    )
    await dead.bind(dlx)
    jobs = await channel.declare_queue(
        JOB_QUEUE,
        durable=True,
        arguments={
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE,
            "x-delivery-limit": JOB_DELIVERY_LIMIT,
        },
    )
    await jobs.bind(exchange, routing_key=f"{JOB_PREFIX}#")
    return Topology(exchange, jobs)
