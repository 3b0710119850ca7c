"""The hub: which sockets of this API instance watch which task, fed by one broker queue.

A task's routing key is bound to the instance's queue when its first watcher subscribes, and
unbound after its last leaves, so each instance receives only the notifications its sockets
need. `subscribe` returns only once the binding is in place: a watcher reads its snapshot
after that, so nothing committed after the snapshot can be missed. Each notification is
decoded and encoded once, then handed to every watcher of its task without awaiting any.

The task is the one the routing key names (protocol §11), and the body must name the same one:
a message published under one task's key with another's `task_id` in its body (by anyone who
may publish to the exchange) would otherwise reach the other task's watchers. It is dropped
and logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec
from aiormq.abc import DeliveredMessage

from services.api.gateway.link import BrokerLink
from shared.config.settings import BrokerSettings
from shared.domain.messages import (
    COMMITTED_AT_HEADER,
    notification_routing_key,
    unknown_schema_version,
)
from shared.observability import spans
from shared.observability.logging import get_logger

log = get_logger(__name__)


class Subscriber(Protocol):
    def deliver(self, seq: int, frame: str, committed_at: float | None = None) -> None: ...
    def resync(self) -> None: ...


@dataclass(eq=False)
class _Topic:
    """The watchers of one task, and whether its routing key is bound right now."""

    subscribers: set[Subscriber] = field(default_factory=set)
    bound: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Serialises bind and unbind of this one routing key."""


class NotificationHub:
    def __init__(self, settings: BrokerSettings, heartbeat_seconds: int) -> None:
        self._topics: dict[str, _Topic] = {}
        self._link = BrokerLink(settings, self, heartbeat_seconds=heartbeat_seconds)
        self._decoder = msgspec.json.Decoder(dict[str, Any])
        self._encoder = msgspec.json.Encoder()

    @property
    def connected(self) -> bool:
        """Whether the broker link is up (the API's `/health` and `/readyz` read it)."""
        return self._link.up

    def watched_tasks(self) -> int:
        """Tasks with at least one watcher here (the `taskrelay_gateway_watched_tasks` gauge)."""
        return len(self._topics)

    def start(self) -> None:
        self._link.start()

    async def stop(self) -> None:
        await self._link.stop()

    async def subscribe(self, task_id: str, subscriber: Subscriber) -> None:
        """Add a watcher; when this returns, the task's notifications reach it."""
        topic = self._topics.setdefault(task_id, _Topic())
        topic.subscribers.add(subscriber)
        async with topic.lock:
            if not topic.bound:
                topic.bound = await self._link.bind(notification_routing_key(task_id))

    async def unsubscribe(self, task_id: str, subscriber: Subscriber) -> None:
        topic = self._topics.get(task_id)
        if topic is None:
            return
        topic.subscribers.discard(subscriber)
        async with topic.lock:
            if topic.subscribers:
                return
            if topic.bound:
                await self._link.unbind(notification_routing_key(task_id))
                topic.bound = False
            # A subscriber that arrived during the unbind found this topic and will rebind it.
            if not topic.subscribers and self._topics.get(task_id) is topic:
                del self._topics[task_id]

    async def on_message(self, message: DeliveredMessage) -> None:
        properties = message.header.properties
        headers = properties.headers or {}
        if not spans.recording():
            self._deliver(message, headers)
            return
        span = spans.received(
            headers, message.routing_key or "", properties.message_id, len(message.body)
        )
        try:
            span.set_attribute("taskrelay.gateway.sockets", self._deliver(message, headers))
        finally:
            spans.end(span)

    def _deliver(self, message: DeliveredMessage, headers: Mapping[str, Any]) -> int:
        """Hand the notification to each watcher of its task; how many it reached."""
        properties = message.header.properties
        if (unknown := unknown_schema_version(headers)) is not None:
            # A shape this instance cannot read (a newer relay's): skipped, never sent half-read.
            log.warning("gateway_unknown_schema", message_id=properties.message_id, error=unknown)
            return 0
        try:
            body = self._decoder.decode(message.body)
        except msgspec.DecodeError as exc:
            log.warning(
                "gateway_bad_notification", message_id=properties.message_id, error=str(exc)
            )
            return 0
        task_id, seq = body.get("task_id"), body.get("seq")
        if not isinstance(task_id, str) or not isinstance(seq, int):
            log.warning("gateway_bad_notification", message_id=properties.message_id)
            return 0
        if message.routing_key != notification_routing_key(task_id):
            log.warning(
                "gateway_misrouted_notification",
                message_id=properties.message_id,
                routing_key=message.routing_key,
            )
            return 0
        topic = self._topics.get(task_id)
        if topic is None or not topic.subscribers:
            return 0  # arrived just after the last watcher left
        frame = self._encoder.encode({"type": "progress", **body}).decode()
        stamp = headers.get(COMMITTED_AT_HEADER)
        committed_at = stamp / 1_000_000 if isinstance(stamp, int) else None
        subscribers = list(topic.subscribers)
        for subscriber in subscribers:
            subscriber.deliver(seq, frame, committed_at)
        return len(subscribers)

    async def on_link_up(self) -> None:
        """Rebind every watched task, then resync its watchers from fresh snapshots."""
        for task_id, topic in list(self._topics.items()):
            async with topic.lock:
                if topic.subscribers and not topic.bound:
                    topic.bound = await self._link.bind(notification_routing_key(task_id))
        for topic in list(self._topics.values()):
            for subscriber in list(topic.subscribers):
                subscriber.resync()

    def on_link_down(self) -> None:
        for topic in self._topics.values():
            topic.bound = False
