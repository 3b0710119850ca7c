"""Publish a batch of outbox rows on one confirm channel and say what became of each.

The rows are sent concurrently but in id order on a single channel, so the broker routes them
in that order; a row counts as published only once its confirm arrives. The outcome separates
row failures (a nack, a returned job, a row too large to send), which are attempted again
after a backoff and eventually parked, from a lost or stuck connection (no confirm in time),
which is an outage: nothing is charged to the rows, and the link is reopened. A returned
notification reached no queue because none was bound; it counts as published.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange
from opentelemetry.trace import Span
from yarl import URL

from shared.adapters.postgres.outbox import OutboxRow
from shared.adapters.rabbitmq.topology import declare_topology
from shared.adapters.unavailable import (
    AMQP_ERRORS,
    RABBITMQ,
    rabbitmq_unreachable,
    redact,
    translated,
    unavailable,
)
from shared.domain.messages import (
    COMMITTED_AT_HEADER,
    EXCHANGE,
    SCHEMA_VERSION,
    SCHEMA_VERSION_HEADER,
)
from shared.observability import spans


@dataclass(slots=True)
class BatchOutcome:
    confirmed: list[int] = field(default_factory=list)
    unroutable: list[int] = field(default_factory=list)
    """Notifications returned by the broker: no queue was bound to receive them."""
    failed: list[tuple[OutboxRow, str]] = field(default_factory=list)
    """Rows that failed on their own (nack, job returned, too large); tried again, then parked."""
    held_back: list[int] = field(default_factory=list)
    """Rows not sent because an earlier row of the same task failed before sending."""
    lost: str | None = None
    """Why the connection was lost mid-batch; unconfirmed rows are then simply sent again."""
    confirmed_at: dict[int, float] = field(default_factory=dict)
    """When each row's confirm (or return) arrived, epoch seconds: the end of its latency."""


class Publisher:
    def __init__(self, url: str, *, timeout: float, max_message_bytes: int, heartbeat: int) -> None:
        parsed = URL(url)
        if "heartbeat" not in parsed.query:
            parsed = parsed.update_query(heartbeat=heartbeat)
        self._url = str(parsed)
        self._timeout = timeout
        self._max_bytes = max_message_bytes
        self._connection: AbstractConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchange: AbstractExchange | None = None
        self.lost = asyncio.Event()
        """Set when the connection or the channel closes: the relay says so and reconnects."""
        self._link_down = False
        """The connection itself went: unconfirmed rows are not charged an attempt."""

    @property
    def connected(self) -> bool:
        return self._exchange is not None and not self.lost.is_set()

    def where(self) -> str:
        return redact(self._url)

    async def connect(self) -> None:
        """Open the connection and a confirm channel, and declare the topology."""
        await self.close()
        with translated(RABBITMQ, self._url, any_error=True):
            connection = await aio_pika.connect(self._url, timeout=5)
        lost = self.lost = asyncio.Event()
        self._link_down = False

        def connection_closed(*_: object) -> None:
            if lost is self.lost:  # not a late callback of an older connection
                self._link_down = True
            lost.set()

        connection.close_callbacks.add(connection_closed)
        try:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            channel.close_callbacks.add(lambda *_: lost.set())
            self._exchange = (await declare_topology(channel)).exchange
            self._channel = channel
        except AMQP_ERRORS as exc:
            await connection.close()
            raise unavailable(RABBITMQ, self._url, exc, "declare topology") from exc
        self._connection = connection

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        self._channel = self._exchange = None
        if connection is not None and not connection.is_closed:
            with contextlib.suppress(*AMQP_ERRORS):
                await asyncio.wait_for(connection.close(), 5)

    async def publish(self, rows: Sequence[OutboxRow]) -> BatchOutcome:
        """Send every row (in order), wait for each confirm, and sort the results."""
        outcome = BatchOutcome()
        if self._exchange is None or self._channel is None:
            outcome.lost = "not connected"
            return outcome
        try:
            # The concrete aiormq channel: its `basic_publish` takes `wait` (see below).
            channel = cast(aiormq.Channel, await self._channel.get_underlay_channel())
        except aiormq.exceptions.ChannelInvalidStateError as exc:
            outcome.lost = str(exc) or "the channel is closed"
            return outcome
        sending: list[tuple[OutboxRow, asyncio.Task[Any]]] = []
        broken_tasks: set[Any] = set()
        traced = spans.recording()  # a span per row only when an SDK records them
        for row in rows:
            if row.task_id in broken_tasks:
                outcome.held_back.append(row.id)
                continue
            try:
                body, properties, span = self._message(row, traced)
            except ValueError as exc:
                broken_tasks.add(row.task_id)
                outcome.failed.append((row, str(exc)))
                continue
            # Tasks start in creation order and queue on the channel's lock in that order, so
            # the frames leave in id order. `wait=False`: hold the lock only to queue the
            # frames, not until the socket drains; the confirm is still awaited.
            publish = channel.basic_publish(
                body,
                exchange=self._exchange.name,
                routing_key=row.routing_key,
                properties=properties,
                mandatory=True,
                timeout=self._timeout,
                wait=False,
            )
            sent = asyncio.ensure_future(publish)
            sent.add_done_callback(partial(_stamp, outcome.confirmed_at, row.id))
            if span is not None:
                sent.add_done_callback(partial(_confirmed, span))
            sending.append((row, sent))
        await asyncio.gather(*(t for _, t in sending), return_exceptions=True)
        for row, task in sending:
            self._sort(outcome, row, task.exception())
        return outcome

    def _sort(self, outcome: BatchOutcome, row: OutboxRow, error: BaseException | None) -> None:
        if error is None:
            outcome.confirmed.append(row.id)
        elif isinstance(error, aiormq.exceptions.PublishError) and row.kind == "notification":
            outcome.unroutable.append(row.id)
        elif self._link_down or rabbitmq_unreachable(error):
            outcome.lost = outcome.lost or _describe(error)
        elif isinstance(error, TimeoutError):
            # No confirm in time: the link is stuck (a silent peer, a blocked broker), not the
            # row. Count it as an outage and reconnect rather than charge the row an attempt.
            outcome.lost = outcome.lost or _describe(error)
            self.lost.set()
        else:
            outcome.failed.append((row, _describe(error)))

    def _message(
        self, row: OutboxRow, traced: bool = False
    ) -> tuple[bytes, aiormq.spec.Basic.Properties, Span | None]:
        """The body and AMQP properties of a row's message, built directly (an
        `aio_pika.Message` would check a lock on each of its 28 attribute sets, once a row),
        and when `traced`, the row's publish span, whose context the message carries on."""
        body = row.payload.encode()
        if len(body) > self._max_bytes:
            raise ValueError(f"message too large: {len(body)} bytes > {self._max_bytes}")
        traceparent, span = row.traceparent, None
        if traced:
            span = spans.start_publish(
                row.traceparent,
                exchange=EXCHANGE,
                routing_key=row.routing_key,
                message_id=str(row.message_id),
                task_id=str(row.task_id),
                body_size=len(body),
            )
            traceparent = spans.traceparent_of(span)
        headers: dict[str, Any] = {
            "x-task-id": str(row.task_id),
            SCHEMA_VERSION_HEADER: SCHEMA_VERSION,
        }
        if row.seq is not None:
            headers["x-seq"] = row.seq
        if traceparent:
            headers["traceparent"] = traceparent
        if row.committed_at:
            headers[COMMITTED_AT_HEADER] = round(row.committed_at * 1_000_000)
        properties = aiormq.spec.Basic.Properties(
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=str(row.message_id),
            headers=headers,
        )
        return body, properties, span


def _stamp(confirmed_at: dict[int, float], row_id: int, _: object) -> None:
    confirmed_at[row_id] = time.time()


def _confirmed(span: Span, sent: asyncio.Future[Any]) -> None:
    """End a row's publish span when its confirm (or its failure) arrives."""
    error = None if sent.cancelled() else sent.exception()
    spans.end(span, None if error is None else _describe(error))


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError | asyncio.TimeoutError):
        return "no confirm before the publish timeout"
    if isinstance(error, aiormq.exceptions.PublishError):
        return "returned by the broker: no queue is bound for this routing key"
    if isinstance(error, aiormq.exceptions.DeliveryError):
        return "nacked by the broker"
    return f"{type(error).__name__}: {error}"
