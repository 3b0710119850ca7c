"""The job message consumer: RabbitMQ `taskrelay.jobs` in, RQ jobs out, each message once.

Manual acks under a prefetch limit. For each message: deduplicate by its AMQP `message_id`
(the `job_inbox` table), enqueue the RQ job (its id derived from the `message_id`, enqueued
with `unique=True`), record it in the inbox, and only then ack. A crash anywhere before the ack
means a redelivery, which finds the job already enqueued or recorded. A message that can never
be handled (not JSON, nested past the parser's recursion limit, not UTF-8, not an object, no
`message_id`, an unknown job or task) is rejected without requeue, so the broker dead-letters it
to `taskrelay.jobs.dead`, and its error is logged: no body makes the consumer raise and leave the
message unacked. While PostgreSQL
or Redis is unreachable, the message is held and retried with backoff rather than requeued in a
loop that would burn through the queue's delivery limit.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from opentelemetry.trace import SpanKind

from services.worker.enqueue import JobQueue
from shared.adapters.rabbitmq.topology import JOB_QUEUE, declare_topology
from shared.domain.backoff import Backoff
from shared.domain.messages import GENERATE_CONTENT, unknown_schema_version
from shared.errors import DependencyUnavailable
from shared.observability import spans
from shared.observability.logging import bound_context, get_logger
from shared.observability.tracing import traced
from shared.service.ports import AbstractUnitOfWorkFactory

log = get_logger(__name__)

MAX_BACKOFF_SECONDS = 30.0


class UnhandleableMessage(Exception):
    """The message can never become a job; it is dead-lettered."""


@dataclass(frozen=True, slots=True)
class JobMessage:
    message_id: UUID
    task_id: UUID


def parse_job_message(message: AbstractIncomingMessage) -> JobMessage:
    if (unknown := unknown_schema_version(message.headers)) is not None:
        # A shape this worker cannot read (a newer relay's): dead-lettered, kept for one that can.
        raise UnhandleableMessage(unknown)
    return parse_job(message.message_id, message.body)


def parse_job(message_id: object, raw: bytes) -> JobMessage:
    """The job a message asks for, or UnhandleableMessage whatever its body holds."""
    try:
        checked_id = UUID(str(message_id))
    except ValueError:
        raise UnhandleableMessage(f"message_id {message_id!r} is not a UUID") from None
    try:
        body: Any = json.loads(raw)
        job, task_id = body["job"], UUID(str(body["task_id"]))
    except RecursionError:  # `[[[[...` deeper than the parser's recursion limit
        raise UnhandleableMessage("body is not a job dispatch: nested too deep") from None
    except (ValueError, KeyError, TypeError, IndexError) as exc:
        raise UnhandleableMessage(f"body is not a job dispatch: {_short(exc)}") from None
    if job != GENERATE_CONTENT:
        raise UnhandleableMessage(f"unknown job {_short(job)}")
    return JobMessage(checked_id, task_id)


def _short(value: object) -> str:
    """A hostile body's piece as logged: its repr, cut (a 1 MB key would be a 1 MB line)."""
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


class JobConsumer:
    def __init__(
        self,
        uow_factory: AbstractUnitOfWorkFactory,
        jobs: JobQueue,
        *,
        prefetch: int,
        settled: Callable[[str], None] = lambda _: None,
    ) -> None:
        self._uow_factory = uow_factory
        self._jobs = jobs
        self._prefetch = prefetch
        self._settled = settled
        """Told how each message ended: acked, dead_lettered or requeued (for the metrics)."""
        self.started = False
        self._queue: AbstractQueue | None = None
        self._tag: str | None = None
        self._in_flight: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()

    async def start(self, channel: AbstractChannel) -> None:
        await channel.set_qos(prefetch_count=self._prefetch)
        self._queue = (await declare_topology(channel)).job_queue
        self._tag = await self._queue.consume(self._on_message, no_ack=False)
        self.started = True
        log.info("job_consumer_started", queue=self._queue.name, prefetch=self._prefetch)

    async def stop(self, drain_seconds: float) -> None:
        """Take no more messages; let the ones in hand finish (unacked ones go back)."""
        self._stopping.set()
        if self._queue is not None and self._tag is not None:
            try:
                await self._queue.cancel(self._tag)
            except Exception as exc:  # the channel may already be gone; nothing to cancel
                log.warning("job_consumer_cancel_failed", error=str(exc))
        if self._in_flight:
            await asyncio.wait(self._in_flight, timeout=drain_seconds)

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._in_flight.add(task)
        try:
            await self._settle(message)
        finally:
            if task is not None:
                self._in_flight.discard(task)

    async def _settle(self, message: AbstractIncomingMessage) -> None:
        # The message's `traceparent` becomes the context of its work: the RQ job carries it on.
        with (
            bound_context(message_id=str(message.message_id)),
            traced(
                f"process {JOB_QUEUE}",
                message.headers,
                kind=SpanKind.CONSUMER,
                attributes=_span_attributes(message) if spans.recording() else None,
            ),
        ):
            try:
                job = parse_job_message(message)
                with bound_context(task_id=str(job.task_id)):
                    outcome = await self._with_backoff(job)
            except UnhandleableMessage as exc:
                log.error("job_message_dead_lettered", error=str(exc))
                await message.reject(requeue=False)
                self._settled("dead_lettered")
                return
            if outcome is None:  # shutting down mid-retry: hand the message back
                await message.nack(requeue=True)
                self._settled("requeued")
                return
            await message.ack()
            self._settled("acked")
            log.info("job_message_acked", outcome=outcome)

    async def _with_backoff(self, job: JobMessage) -> str | None:
        backoff = Backoff(base=0.5, cap=MAX_BACKOFF_SECONDS)
        while True:
            try:
                return await self._handle(job)
            except DependencyUnavailable as exc:  # PostgreSQL or Redis away: hold the message
                delay = backoff.next()
                log.warning("job_message_retrying", error=str(exc), retry_in=round(delay, 2))
            try:
                await asyncio.wait_for(self._stopping.wait(), delay)
                return None
            except TimeoutError:
                pass

    async def _handle(self, job: JobMessage) -> str:
        async with self._uow_factory() as uow:
            if await uow.inbox.seen(job.message_id):
                return "duplicate"
            if not await uow.tasks.exists(job.task_id):
                raise UnhandleableMessage(f"task {job.task_id} does not exist")
        job_id = await asyncio.to_thread(self._jobs.enqueue, job.task_id, job.message_id)
        async with self._uow_factory() as uow:
            await uow.inbox.record(job.message_id, job.task_id, job_id)
            await uow.commit()
        return "enqueued"


def _span_attributes(message: AbstractIncomingMessage) -> dict[str, spans.AttributeValue]:
    """The messaging attributes of the consumer's span (recorded with an SDK only)."""
    routing_key = message.routing_key or ""
    return spans.consumer_attributes(JOB_QUEUE, routing_key, message.message_id, len(message.body))
