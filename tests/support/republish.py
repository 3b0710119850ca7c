"""Publish a task's outbox rows by hand, with the relay's own publisher.

Tests replay what a relay can do that is hard to provoke on cue: publish a row again (after a
crash before marking it, or a duplicate message), publish rows out of order, or not at all. The
rows are read as the relay reads them (`OutboxRow`) and sent by `services.relay.publisher`, so
the message (exchange, routing key, `message_id`, headers, persistence) is the relay's, not a
copy of it; the rows are not marked published.
"""

from __future__ import annotations

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import BigInteger, Float, Text, cast, extract, select

from services.relay.outbox_sql import OutboxRow, row_from
from services.relay.publisher import Publisher
from shared.adapters.postgres import UnitOfWorkFactory
from shared.adapters.postgres.tables import outbox
from shared.config.settings import RelaySettings

_ROWS = select(
    outbox.c.id,
    outbox.c.message_id,
    outbox.c.task_id,
    outbox.c.kind,
    outbox.c.routing_key,
    cast(outbox.c.payload, Text).label("payload"),
    cast(outbox.c.payload["seq"].astext, BigInteger).label("seq"),
    outbox.c.headers["traceparent"].astext.label("traceparent"),
    outbox.c.attempts,
    cast(extract("epoch", outbox.c.created_at), Float).label("committed_at"),
).order_by(outbox.c.id)
"""The columns of the relay's claim (`outbox_sql.CLAIM_ALL`), for any row of a task."""


async def outbox_rows(uow_factory: UnitOfWorkFactory, task_id: UUID, kind: str) -> list[OutboxRow]:
    """The task's outbox rows of one kind (`job` or `notification`), in commit order."""
    query = _ROWS.where(outbox.c.task_id == task_id, outbox.c.kind == kind)
    async with uow_factory() as uow:
        return [row_from(row._mapping) for row in await uow.connection.execute(query)]


async def notification_rows(uow_factory: UnitOfWorkFactory, task_id: UUID) -> dict[int, OutboxRow]:
    """The task's notification rows by `seq`."""
    rows = await outbox_rows(uow_factory, task_id, "notification")
    return {row.seq: row for row in rows if row.seq is not None}


async def publish(amqp_url: str, rows: Sequence[OutboxRow]) -> None:
    """Send `rows` in this order, as the relay sends a batch, and wait for every confirm."""
    defaults = RelaySettings()
    publisher = Publisher(
        amqp_url,
        timeout=defaults.publish_timeout_seconds,
        max_message_bytes=defaults.max_message_bytes,
        heartbeat=defaults.broker_heartbeat_seconds,
    )
    await publisher.connect()
    try:
        outcome = await publisher.publish(rows)
    finally:
        await publisher.close()
    assert outcome.lost is None, outcome.lost
    assert not outcome.failed, outcome.failed
    assert not outcome.held_back, outcome.held_back
