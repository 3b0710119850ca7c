"""Trace context across every process (CONTRACT §10a), through OpenTelemetry's API.

A request's W3C `traceparent` (or a new trace when it brings none) becomes the current context
while its work runs; the outbox writer stores it in each row's headers, the relay sends it as
the AMQP header `traceparent`, the worker's consumer hands it to the RQ job in `job.meta`, and
the job runs under it, so its notifications carry it again. `traced()` also binds `trace_id`
into the log context, so every line logged for that work names it.

Only the API package is a dependency: without an SDK, spans are not recorded and a missing
trace gets ids of our own. With `OTEL_EXPORTER_OTLP_ENDPOINT` set (and the `otlp` extra
installed), `configure_tracing` installs the SDK and spans are exported over OTLP.
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, nullcontext

from opentelemetry import context, propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    NonRecordingSpan,
    ProxyTracerProvider,
    SpanContext,
    SpanKind,
    TraceFlags,
)

from shared.errors import ConfigurationError
from shared.logging import bound_context

TRACEPARENT = "traceparent"
_tracer = trace.get_tracer("taskrelay")


def configure_tracing(service: str) -> bool:
    """Export spans over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set; True when it does."""
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return False
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise ConfigurationError(
            "OTEL_EXPORTER_OTLP_ENDPOINT is set but the OTLP exporter is not installed: "
            "pip install 'taskrelay[otlp]'"
        ) from exc
    name = os.environ.get("OTEL_SERVICE_NAME") or f"taskrelay-{service}"
    provider = TracerProvider(resource=Resource.create({"service.name": name}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    global _provider_installed
    _provider_installed = True
    return True


@contextmanager
def traced(
    name: str, carrier: Mapping[str, object] | None = None, *, kind: SpanKind = SpanKind.INTERNAL
) -> Iterator[str]:
    """Run the body as a span under the trace in `carrier` (a new trace when it has none).

    Yields the trace id (32 hex digits), which is bound as `trace_id` to every log line inside.
    """
    texts = {k.lower(): _text(v) for k, v in (carrier or {}).items() if isinstance(v, str | bytes)}
    # Nothing to extract from an empty carrier: extract() would return an empty context.
    parent = propagate.extract(texts) if texts else Context()
    if not trace.get_current_span(parent).get_span_context().is_valid:
        parent = trace.set_span_in_context(_new_root(), parent)
    token = context.attach(parent)
    try:
        # Without an SDK no span is recorded: the work runs in the parent's context as it is.
        with (
            _tracer.start_as_current_span(name, kind=kind)
            if _recording()
            else nullcontext(trace.get_current_span(parent))
        ) as span:
            trace_id = format(span.get_span_context().trace_id, "032x")
            with bound_context(trace_id=trace_id):
                yield trace_id
    finally:
        context.detach(token)


def propagated_fields() -> frozenset[str]:
    """The (lower-case) header names the configured propagators read and write: a carrier
    needs no other (`traceparent`, `tracestate` and `baggage` by default)."""
    return frozenset(field.lower() for field in propagate.get_global_textmap().fields)


def trace_headers() -> dict[str, str]:
    """The current context as W3C headers (`traceparent`, maybe `tracestate`); {} outside."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id in a `traceparent` value, or None when it is not a valid one."""
    if not traceparent:
        return None
    span = trace.get_current_span(propagate.extract({TRACEPARENT: traceparent}))
    span_context = span.get_span_context()
    return format(span_context.trace_id, "032x") if span_context.is_valid else None


def _recording() -> bool:
    """Whether a tracer provider (the SDK) is installed; until then every span is a no-op.

    Asked once per process and kept: OpenTelemetry reads the environment every time it is
    asked (~2 us a request). A provider is installed at start-up (`configure_tracing`), before
    any work is traced.
    """
    global _provider_installed
    if _provider_installed is None:
        _provider_installed = not isinstance(trace.get_tracer_provider(), ProxyTracerProvider)
    return _provider_installed


_provider_installed: bool | None = None


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _new_root() -> NonRecordingSpan:
    """A fresh trace for work that came without one (the SDK, when installed, makes its own).

    The ids come from `random`, as the SDK's own `RandomIdGenerator` makes them: a trace id
    must be unique, not secret, and `SystemRandom` cost two getrandom(2) calls per request.
    """
    return NonRecordingSpan(
        SpanContext(
            trace_id=random.getrandbits(128) or 1,
            span_id=random.getrandbits(64) or 1,
            is_remote=False,
            trace_flags=TraceFlags(TraceFlags.SAMPLED),
        )
    )
