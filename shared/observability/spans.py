"""The spans of a message's hops, named by OpenTelemetry's messaging semantic conventions.

One trace runs from a request to the last frame a browser gets: the request's span (the API),
then for each outbox row the relay's `publish taskrelay` (PRODUCER, a child of the context the
row's writer stored in its `traceparent`, so the request that wrote it is its parent), the
worker's `process taskrelay.jobs` (CONSUMER, a child of the publish: the relay sends the
publish span's context on as the message's `traceparent`), the job's `generate_content` and
one `generate_content item` per item, and the gateway's `process taskrelay.gateway`
(CONSUMER) for each notification it hands to the sockets watching its task. The job's
notifications carry the job's context, so their publish and delivery spans join the same
trace.

Spans are recorded only when an SDK is installed (`shared.observability.tracing.configure_tracing`).
Without one, every call site asks `recording()` (one cached boolean) and does nothing else: the
light trace path of `shared.observability.tracing` carries the `traceparent` on as before, at
the same cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from shared.domain.content import ContentRequest
from shared.observability.tracing import TRACEPARENT, recording

SYSTEM = "rabbitmq"
SEQ_HEADER = "x-seq"
GATEWAY = "taskrelay.gateway"
"""The gateway's queues in span names: one per API instance, named by host and pid."""
_tracer = trace.get_tracer("taskrelay.messaging")
_NOTHING: AbstractContextManager[None] = nullcontext()

__all__ = [
    "AttributeValue",
    "consumer_attributes",
    "end",
    "flush",
    "item_span",
    "received",
    "recording",
    "start_publish",
    "traceparent_of",
]


def start_publish(
    traceparent: str | None,
    *,
    exchange: str,
    routing_key: str,
    message_id: str,
    task_id: str,
    body_size: int,
) -> Span:
    """The PRODUCER span of one row's publication, under the context its writer stored."""
    return _tracer.start_span(
        f"publish {exchange}",
        context=_parent(traceparent),
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": SYSTEM,
            "messaging.operation.type": "send",
            "messaging.operation.name": "publish",
            "messaging.destination.name": exchange,
            "messaging.rabbitmq.destination.routing_key": routing_key,
            "messaging.message.id": message_id,
            "messaging.message.body.size": body_size,
            "taskrelay.task_id": task_id,
        },
    )


def traceparent_of(span: Span) -> str:
    """The `traceparent` that makes the receiver's span a child of `span`."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    return carrier[TRACEPARENT]


def end(span: Span, error: str | None = None) -> None:
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, error))
    span.end()


def consumer_attributes(
    queue: str, routing_key: str, message_id: object, body_size: int
) -> dict[str, AttributeValue]:
    """The attributes of a `process <queue>` span (CONSUMER)."""
    return {
        "messaging.system": SYSTEM,
        "messaging.operation.type": "process",
        "messaging.operation.name": "process",
        "messaging.destination.name": queue,
        "messaging.rabbitmq.destination.routing_key": routing_key,
        "messaging.message.id": str(message_id),
        "messaging.message.body.size": body_size,
    }


def received(
    headers: Mapping[str, Any], routing_key: str, message_id: object, body_size: int
) -> Span:
    """The gateway's CONSUMER span of one notification, a child of the relay's publish."""
    header = headers.get(TRACEPARENT)
    traceparent = header.decode("latin-1") if isinstance(header, bytes) else header
    attributes = consumer_attributes(GATEWAY, routing_key, message_id, body_size)
    if isinstance(seq := headers.get(SEQ_HEADER), int):
        attributes["taskrelay.seq"] = seq
    return _tracer.start_span(
        f"process {GATEWAY}",
        context=_parent(traceparent if isinstance(traceparent, str) else None),
        kind=SpanKind.CONSUMER,
        attributes=attributes,
    )


def item_span(request: ContentRequest) -> AbstractContextManager[Any]:
    """The span of one item's generation, under the job's; nothing without an SDK."""
    if not recording():
        return _NOTHING
    return _tracer.start_as_current_span(
        "generate_content item",
        attributes={
            "taskrelay.task_id": request.task_id,
            "taskrelay.item.concept_id": request.concept_id,
            "taskrelay.item.content_type": request.content_type,
            "taskrelay.item.attempt": request.attempt,
        },
    )


def flush(timeout_seconds: float = 5.0) -> None:
    """Export what is buffered now: an RQ work horse ends with `os._exit`, which would drop
    the spans its job recorded."""
    if not recording():
        return
    force_flush = getattr(trace.get_tracer_provider(), "force_flush", None)
    if force_flush is not None:
        force_flush(int(timeout_seconds * 1000))


def _parent(traceparent: str | None) -> Context:
    return propagate.extract({TRACEPARENT: traceparent}) if traceparent else Context()
