"""The dead-lettered job messages in `taskrelay.jobs.dead`: read, sent back, or dropped.

AMQP has no peek: listing takes the messages unacknowledged and closes its channel, which hands
every one back to the queue. A replay publishes each message (body, `message_id`, headers but
the broker's death records) to the work queue `taskrelay.jobs` through the default exchange,
so only taskrelay's workers get it again, not the outside consumers bound to `taskrelay` that
had it already; it is acked off the dead queue only once the broker confirmed the copy, so a
crash in between leaves a duplicate (the worker drops it by `message_id`), never a loss. A
replay and a drop take at most the messages there were when they started: a message that dies
again meanwhile is not taken twice.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from shared.adapters.rabbitmq.topology import DEAD_JOB_QUEUE, JOB_QUEUE, declare_topology
from shared.adapters.unavailable import AMQP_ERRORS, RABBITMQ, translated
from shared.observability.logging import silenced

CONNECT_TIMEOUT = 5.0
DEATH_HEADERS = frozenset(
    {
        "x-death",
        "x-first-death-exchange",
        "x-first-death-queue",
        "x-first-death-reason",
        "x-last-death-exchange",
        "x-last-death-queue",
        "x-last-death-reason",
        "x-delivery-count",
    }
)
"""What the broker wrote about the message's deaths and deliveries: not sent on by a replay."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    message_id: str | None
    routing_key: str
    reason: str
    """The broker's: `rejected` (the worker could not handle it: its log says why),
    `delivery_limit` (redelivered too often, a crash loop), `expired` or `maxlen`."""
    task_id: str | None
    deaths: int
    """How many times it was dead-lettered from the queue of its latest death."""
    queue: str | None

    def as_dict(self) -> dict[str, Any]:
        """One entry of `admin dead-letters --json` (docs/protocol.md §2)."""
        return {
            "message_id": self.message_id,
            "routing_key": self.routing_key,
            "reason": self.reason,
            "task_id": self.task_id,
        }


class DeadLetterQueue:
    def __init__(self, url: str) -> None:
        self._url = url

    async def letters(self, limit: int) -> list[DeadLetter]:
        async with self._channel() as channel:
            dead = await channel.declare_queue(DEAD_JOB_QUEUE, passive=True)
            letters = [dead_letter(m) async for m in _taken(dead, limit)]
        return letters  # closing the channel handed every message back

    async def replay(self) -> list[DeadLetter]:
        """Send every message there is now back to the work queue, each confirmed, then acked."""
        replayed: list[DeadLetter] = []
        async with self._channel() as channel:
            dead = await channel.declare_queue(DEAD_JOB_QUEUE, passive=True)
            async for message in _taken(dead, _count(dead)):
                await channel.default_exchange.publish(
                    _copy(message), routing_key=JOB_QUEUE, mandatory=True
                )
                await message.ack()
                replayed.append(dead_letter(message))
        return replayed

    async def drop(self, at_most: int) -> list[DeadLetter]:
        dropped: list[DeadLetter] = []
        async with self._channel() as channel:
            dead = await channel.declare_queue(DEAD_JOB_QUEUE, passive=True)
            async for message in _taken(dead, at_most):
                await message.ack()
                dropped.append(dead_letter(message))
        return dropped

    async def count(self) -> int:
        async with self._channel() as channel:
            return _count(await channel.declare_queue(DEAD_JOB_QUEUE, passive=True))

    @contextlib.asynccontextmanager
    async def _channel(self) -> AsyncIterator[AbstractChannel]:
        with translated(RABBITMQ, self._url, any_error=True), silenced("aiormq.connection"):
            connection = await aio_pika.connect(self._url, timeout=CONNECT_TIMEOUT)
        try:
            with translated(RABBITMQ, self._url, any_error=True):
                channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
                await declare_topology(channel)  # the dead queue exists even before any death
            with translated(RABBITMQ, self._url):
                yield channel
        finally:
            with contextlib.suppress(*AMQP_ERRORS):
                await connection.close()


def dead_letter(message: AbstractIncomingMessage) -> DeadLetter:
    """What a dead-lettered message says of itself: the broker's latest death record first."""
    headers = message.headers or {}
    deaths = headers.get("x-death")
    first = deaths[0] if isinstance(deaths, list) and deaths else None
    latest: dict[str, Any] = first if isinstance(first, dict) else {}
    reason = latest.get("reason") or headers.get("x-last-death-reason") or "unknown"
    keys = latest.get("routing-keys")
    routing_key = keys[0] if isinstance(keys, list) and keys else message.routing_key or ""
    return DeadLetter(
        message_id=message.message_id,
        routing_key=_text(routing_key),
        reason=_text(reason),
        task_id=_task_id(message),
        deaths=int(latest.get("count") or 1),
        queue=_text(latest["queue"]) if latest.get("queue") else None,
    )


def _task_id(message: AbstractIncomingMessage) -> str | None:
    header = (message.headers or {}).get("x-task-id")
    if header:
        return _text(header)
    try:
        body = json.loads(message.body)
    except ValueError:
        return None
    task_id = body.get("task_id") if isinstance(body, dict) else None
    return str(task_id) if task_id is not None else None


def _copy(message: AbstractIncomingMessage) -> aio_pika.Message:
    headers = {k: v for k, v in (message.headers or {}).items() if k not in DEATH_HEADERS}
    return aio_pika.Message(
        message.body,
        headers=headers,
        content_type=message.content_type,
        content_encoding=message.content_encoding,
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        message_id=message.message_id,
        timestamp=message.timestamp,
        type=message.type,
        app_id=message.app_id,
    )


async def _taken(queue: AbstractQueue, at_most: int) -> AsyncIterator[AbstractIncomingMessage]:
    for _ in range(at_most):
        message = await queue.get(no_ack=False, fail=False, timeout=CONNECT_TIMEOUT)
        if message is None:
            return
        yield message


def _count(queue: AbstractQueue) -> int:
    result = queue.declaration_result
    return int(result.message_count or 0) if result is not None else 0


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
