"""Relay test helpers: keep a ledger of what the exchange routes, and write outbox rows to fill it.

Starting a relay and reading its /health is `harness.relay` (re-exported here: `start_relay`,
`health`, `Health`).

The ledger is what an outside consumer sees: its own queue bound to `#` on the `taskrelay`
exchange, recording every delivery in arrival order. The writer commits (or rolls back) real
task notifications through the state machine, remembering which markers were committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID, uuid4

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from harness import resources as res
from harness.relay import Health, health, start_relay
from harness.resources import Resources
from shared.adapters.postgres import UnitOfWorkFactory
from shared.adapters.rabbitmq.topology import declare_topology
from shared.service.transitions import emit_event
from tests.support import tasks

__all__ = ["Delivery", "Health", "Ledger", "Writer", "health", "isolated_database", "start_relay"]


@dataclass
class Delivery:
    message_id: str
    routing_key: str
    task_id: str
    seq: int | None
    body: dict[str, Any]
    headers: dict[str, Any]
    content_type: str | None
    delivery_mode: int | None
    properties: dict[str, Any] = field(default_factory=dict)
    """Every AMQP basic property the message was published with (headers aside), unset ones
    left out."""


PROPERTIES = (
    "content_type",
    "content_encoding",
    "delivery_mode",
    "priority",
    "correlation_id",
    "reply_to",
    "expiration",
    "message_id",
    "timestamp",
    "type",
    "user_id",
    "app_id",
)


@dataclass
class Ledger:
    """Every message the exchange routed to this test's own queue, in arrival order."""

    deliveries: list[Delivery] = field(default_factory=list)
    _connection: Any = None

    async def open(self, amqp_url: str, binding: str = "#") -> Ledger:
        self._connection = await aio_pika.connect(amqp_url)
        channel = await self._connection.channel()
        topology = await declare_topology(channel)
        queue = await channel.declare_queue(f"test-ledger-{uuid4().hex[:8]}", exclusive=True)
        await queue.bind(topology.exchange, routing_key=binding)
        await queue.consume(self._received, no_ack=True)
        return self

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()

    async def _received(self, message: AbstractIncomingMessage) -> None:
        headers = dict(message.headers)
        seq = headers.get("x-seq")
        self.deliveries.append(
            Delivery(
                message_id=str(message.message_id),
                routing_key=message.routing_key or "",
                task_id=str(headers.get("x-task-id")),
                seq=seq if isinstance(seq, int) else None,
                body=json.loads(message.body),
                headers=headers,
                content_type=message.content_type,
                delivery_mode=int(message.delivery_mode) if message.delivery_mode else None,
                properties={
                    name: value
                    for name in PROPERTIES
                    # aio-pika reports an unset priority as 0, the broker's default
                    if (value := getattr(message, name)) is not None
                    and (name, value) != ("priority", 0)
                },
            )
        )

    def markers(self) -> set[str]:
        return {str(d.body.get("message")) for d in self.deliveries}

    def duplicates(self) -> int:
        return len(self.deliveries) - len({d.message_id for d in self.deliveries})

    def first_delivery_order_broken(self, tasks: set[str]) -> list[str]:
        """Those of `tasks` whose first deliveries did not arrive in strictly increasing `seq`."""
        seen: set[str] = set()
        last: dict[str, int] = {}
        broken: list[str] = []
        for d in self.deliveries:
            if d.seq is None or d.task_id not in tasks or d.message_id in seen:
                continue
            seen.add(d.message_id)
            if d.seq <= last.get(d.task_id, 0):
                broken.append(f"{d.task_id}: seq {d.seq} after {last[d.task_id]}")
            last[d.task_id] = d.seq
        return broken


@dataclass
class Writer:
    """Commits item-result notifications of real tasks; some transactions roll back on purpose."""

    uow_factory: UnitOfWorkFactory
    committed: set[str] = field(default_factory=set)
    rolled_back: set[str] = field(default_factory=set)
    tasks: list[UUID] = field(default_factory=list)

    async def create_tasks(self, count: int) -> None:
        for _ in range(count):
            self.tasks.append(await tasks.new_task(self.uow_factory, "relay-test", 1))

    async def write(self, rows: int, *, concurrency: int = 8, rollback_rate: float = 0.1) -> None:
        """Commit `rows` notifications over the tasks, from `concurrency` transactions at once."""
        remaining = [rows]

        async def one_writer(rng: random.Random) -> None:
            while remaining[0] > 0:
                rollback = rng.random() < rollback_rate
                if not rollback:
                    remaining[0] -= 1
                await self.one(rng.choice(self.tasks), rollback=rollback)

        await asyncio.gather(*(one_writer(random.Random(i)) for i in range(concurrency)))

    async def keep_writing(self, stop: asyncio.Event, pause: float = 0.01) -> None:
        """Load: one committed row after another until `stop` is set."""
        rng = random.Random(7)
        while not stop.is_set():
            await self.one(rng.choice(self.tasks))
            await asyncio.sleep(pause)

    async def one(self, task_id: UUID, *, rollback: bool = False) -> str:
        marker = f"{'rollback' if rollback else 'commit'}-{uuid4().hex}"
        async with self.uow_factory() as uow:
            state = await uow.tasks.lock(task_id)
            assert state is not None
            await emit_event(uow, state, step="relay_test", message=marker)
            if rollback:
                self.rolled_back.add(marker)
                return marker  # leaving the block rolls the transaction back
            await uow.commit()
        self.committed.add(marker)
        return marker


@contextlib.asynccontextmanager
async def isolated_database(resources: Resources) -> AsyncIterator[str]:
    """A migrated database of its own, for tests that must see no other test's outbox rows."""
    # A copy of the session's migrated template (harness.resources.templated), made off the loop.
    making = res.migrated_database("taskrelay_test_relay")
    url = await asyncio.to_thread(making.__enter__)
    try:
        yield url
    finally:
        await asyncio.to_thread(making.__exit__, None, None, None)
