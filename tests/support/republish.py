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

from harness import sql
from services.relay.publisher import Publisher
from shared.adapters.postgres import UnitOfWorkFactory
from shared.adapters.postgres.outbox.delivery import ROW_COLUMNS, OutboxRow, row_from
from shared.config.settings import RelaySettings

_ROWS = f"SELECT {ROW_COLUMNS} FROM outbox o WHERE o.task_id = $1 AND o.kind = $2 ORDER BY o.id"
"""The columns of the relay's claim (`OutboxDelivery.claim`), for any row of a task."""


async def outbox_rows(uow_factory: UnitOfWorkFactory, task_id: UUID, kind: str) -> list[OutboxRow]:
    """The task's outbox rows of one kind (`job` or `notification`), in commit order."""
    return [row_from(row) for row in await sql.fetch(uow_factory, _ROWS, task_id, kind)]


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
