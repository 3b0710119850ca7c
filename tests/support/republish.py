"""Publish a task's outbox notification rows by hand, exactly as the relay does.

Same exchange, routing key, `message_id`, headers (`x-task-id`, `x-seq`), persistent, JSON,
with publisher confirms. Gateway tests use it to replay what a relay can do that is hard to
provoke on cue: publish a row again (after a crash before marking it) or publish rows out of
order, or not at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import aio_pika
from sqlalchemy import select

from shared.db import UnitOfWorkFactory
from shared.db.tables import outbox
from shared.messaging import EXCHANGE


@dataclass(frozen=True)
class Row:
    message_id: UUID
    routing_key: str
    payload: dict[str, Any]

    @property
    def seq(self) -> int:
        return int(self.payload["seq"])


async def notification_rows(uows: UnitOfWorkFactory, task_id: UUID) -> dict[int, Row]:
    """The task's notification rows by `seq`."""
    query = (
        select(outbox.c.message_id, outbox.c.routing_key, outbox.c.payload)
        .where(outbox.c.task_id == task_id, outbox.c.kind == "notification")
        .order_by(outbox.c.id)
    )
    async with uows() as uow:
        rows = [Row(*r) for r in await uow.connection.execute(query)]
    return {row.seq: row for row in rows}


async def publish(amqp_url: str, rows: list[Row]) -> None:
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.declare_exchange(
            EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        for row in rows:
            message = aio_pika.Message(
                json.dumps(row.payload).encode(),
                message_id=str(row.message_id),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                headers={"x-task-id": str(row.payload["task_id"]), "x-seq": row.seq},
            )
            await exchange.publish(message, routing_key=row.routing_key)
    finally:
        await connection.close()
