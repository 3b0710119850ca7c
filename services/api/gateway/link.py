"""The gateway's own link to RabbitMQ: one connection, one exclusive auto-delete queue, kept up.

The queue is this API instance's alone (exclusive: the broker deletes it when the connection
drops), and it receives only what it is bound to: the hub binds `notification.<task_id>` for
the tasks its sockets watch. When the link drops, whatever was published meanwhile is gone for
this instance, so on every (re)connect the listener rebinds and resyncs its sockets from fresh
snapshots. Reconnects back off with jitter (`shared.domain.backoff`); which errors mean the
broker is unreachable is `shared.adapters.unavailable`'s to say.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Coroutine
from typing import Any, Protocol
from uuid import uuid4

import aio_pika
import aiormq
from aio_pika.abc import AbstractExchange, AbstractQueue
from aiormq.abc import DeliveredMessage
from yarl import URL

from shared.adapters.unavailable import AMQP_ERRORS
from shared.config.settings import BrokerSettings
from shared.domain.backoff import Backoff
from shared.domain.messages import EXCHANGE
from shared.observability.logging import get_logger

log = get_logger(__name__)


class LinkListener(Protocol):
    def on_message(self, message: DeliveredMessage) -> Coroutine[Any, Any, None]: ...
    async def on_link_up(self) -> None: ...
    def on_link_down(self) -> None: ...


class BrokerLink:
    def __init__(
        self,
        settings: BrokerSettings,
        listener: LinkListener,
        *,
        heartbeat_seconds: int,
        retry_min_seconds: float = 0.2,
        retry_max_seconds: float = 5.0,
    ) -> None:
        url = URL(settings.url)
        if "heartbeat" not in url.query:  # as the relay does: the URL's own value wins
            url = url.update_query(heartbeat=heartbeat_seconds)
        self._url = str(url)
        self._listener = listener
        self._reconnects = Backoff(retry_min_seconds, retry_max_seconds)
        self.queue_name = (
            f"taskrelay.gateway.{socket.gethostname()}.{os.getpid()}.{uuid4().hex[:8]}"
        )
        self._queue: AbstractQueue | None = None
        self._exchange: AbstractExchange | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def up(self) -> bool:
        return self._queue is not None

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name="gateway-broker-link")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def bind(self, routing_key: str) -> bool:
        """Route `routing_key` to our queue; False when the link is down (it rebinds later)."""
        queue, exchange = self._queue, self._exchange
        if queue is None or exchange is None:
            return False
        try:
            # No RPC timeout: aiormq closes the whole channel when one is cancelled; a dead
            # link fails pending calls through the heartbeat instead.
            await queue.bind(exchange, routing_key)
        except AMQP_ERRORS as exc:
            log.warning("gateway_bind_failed", routing_key=routing_key, error=repr(exc))
            return False
        return True

    async def unbind(self, routing_key: str) -> None:
        queue, exchange = self._queue, self._exchange
        if queue is None or exchange is None:
            return  # the queue died with the link; nothing is bound any more
        try:
            await queue.unbind(exchange, routing_key)
        except AMQP_ERRORS as exc:
            log.warning("gateway_unbind_failed", routing_key=routing_key, error=repr(exc))

    async def _supervise(self) -> None:
        while True:
            try:
                await self._connect_and_serve()
                self._reconnects.reset()  # it was up: the next drop starts the backoff again
                delay = self._reconnects.next()
            except AMQP_ERRORS as exc:
                delay = self._reconnects.next()
                log.warning("gateway_broker_unreachable", error=repr(exc), retry_in=delay)
            await asyncio.sleep(delay)

    async def _connect_and_serve(self) -> None:
        lost = asyncio.Event()

        def on_close(*_: Any) -> None:
            lost.set()

        connection = await aio_pika.connect(self._url, timeout=5)
        try:
            connection.close_callbacks.add(on_close)
            channel = await connection.channel(publisher_confirms=False)
            channel.close_callbacks.add(on_close)
            exchange = await channel.declare_exchange(
                EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
            )
            queue = await channel.declare_queue(self.queue_name, exclusive=True, auto_delete=True)
            # Consumed on the aiormq channel underneath: aio-pika would wrap every delivery in
            # an IncomingMessage (28 checked attribute sets) and run the callback in a task of
            # its own, a second one after aiormq's, for each frame a socket is sent.
            underlay: aiormq.abc.AbstractChannel = await channel.get_underlay_channel()
            await underlay.basic_consume(queue.name, self._listener.on_message, no_ack=True)
            self._queue, self._exchange = queue, exchange
            await self._listener.on_link_up()
            log.info("gateway_broker_connected", queue=self.queue_name)
            await lost.wait()
            log.warning("gateway_broker_lost", queue=self.queue_name)
        finally:
            self._queue = self._exchange = None
            self._listener.on_link_down()
            with contextlib.suppress(*AMQP_ERRORS):
                await connection.close()
