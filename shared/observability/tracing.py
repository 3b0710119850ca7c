"""Trace context across every process (docs/protocol.md §10a), through OpenTelemetry's API.

A request's W3C `traceparent` (or a new trace when it brings none) becomes the current context
while its work runs; the outbox writer stores it in each row's headers, the relay sends it as
the AMQP header `traceparent`, the worker's consumer hands it to the RQ job in `job.meta`, and
the job runs under it, so its notifications carry it again. `traced()` also binds `trace_id`
into the log context, so every line logged for that work names it.

Only the API package is a dependency: without an SDK, spans are not recorded and a missing
trace gets ids of our own. With `OTEL_EXPORTER_OTLP_ENDPOINT` set (and the `otlp` extra
installed), `configure_tracing` installs the SDK and spans are exported over OTLP.

Without the SDK, and with OpenTelemetry's default propagators (W3C trace context and baggage),
work that brings at most a `traceparent` is traced without OpenTelemetry's context machinery:
all there is to carry on is that header, so `traced()` keeps it in a context variable of its
own and `trace_headers()` hands it on, as OpenTelemetry's propagator would have (the same
validation, the same header out). That is the case of every request and job unless an SDK is
installed, and it costs a fraction of building, attaching and injecting an OpenTelemetry
context (~15 us of the API's CPU per request, in bench/api_retry.py's profile). A carrier
with a `tracestate` or `baggage` goes through OpenTelemetry as before.

What a client sends is copied into every outbox row, AMQP message and RQ job of its work (3,000
items: thousands of copies), so the carrier is bounded first (`bounded_carrier`): `traceparent`
is kept (it is validated to its 55 characters), `tracestate` is kept up to 512 characters
(whole entries dropped from its end past that, as W3C trace context allows), and a `baggage`
over `MAX_BAGGAGE_BYTES` (512) is dropped whole: cut, it would carry a half-entry on.
"""

from __future__ import annotations

import os
import random
import re
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from functools import cache
from types import TracebackType

from opentelemetry import context, propagate, trace
from opentelemetry.context import Context
from opentelemetry.trace import (
    NonRecordingSpan,
    ProxyTracerProvider,
    SpanContext,
    SpanKind,
    TraceFlags,
)
from opentelemetry.util.types import AttributeValue

from shared.errors import ConfigurationError
from shared.observability.logging import bound_context

TRACEPARENT = "traceparent"
MAX_BAGGAGE_BYTES = 512
"""A longer `baggage` header is dropped, not carried into every row, message and job."""
MAX_TRACESTATE_CHARS = 512
"""What W3C trace context asks a vendor to carry on at least; entries past it are dropped."""
W3C_FIELDS = frozenset({TRACEPARENT, "tracestate", "baggage"})
"""What OpenTelemetry's default propagators (trace context, then baggage) read and write."""
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


class traced:  # lower case: used as a function, `with traced(name, carrier) as trace_id:`
    """Run the body as a span under the trace in `carrier` (a new trace when it has none).

    Entering yields the trace id (32 hex digits), which is bound as `trace_id` to every log
    line inside. A class, not a generator: it is entered for every request, message and job.
    """

    __slots__ = ("_attributes", "_carrier", "_kind", "_logged", "_name", "_otel", "_token")

    def __init__(
        self,
        name: str,
        carrier: Mapping[str, object] | None = None,
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> None:
        self._name, self._carrier, self._kind = name, carrier, kind
        self._attributes = attributes
        """The span's attributes, when an SDK records it (`shared.observability.spans` names
        them)."""
        self._otel: AbstractContextManager[str] | None = None

    def __enter__(self) -> str:
        fields = propagated_fields()
        texts = bounded_carrier(
            {
                field: _text(value)
                for key, value in (self._carrier or {}).items()
                if isinstance(value, str | bytes) and (field := key.lower()) in fields
            }
        )
        if _light() and texts.keys() <= {TRACEPARENT}:
            trace_id, traceparent = _carried_on(texts.get(TRACEPARENT))
            self._token = _light_headers.set({TRACEPARENT: traceparent})
            self._logged = bound_context(trace_id=trace_id)
            self._logged.__enter__()
            return trace_id
        self._otel = _otel_traced(self._name, texts, self._kind, self._attributes)
        return self._otel.__enter__()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._otel is not None:
            self._otel.__exit__(exc_type, exc, tb)
            return
        self._logged.__exit__()
        _light_headers.reset(self._token)


@contextmanager
def _otel_traced(
    name: str,
    texts: dict[str, str],
    kind: SpanKind,
    attributes: Mapping[str, AttributeValue] | None = None,
) -> Iterator[str]:
    """`traced()` through OpenTelemetry's context and propagators (an SDK, a `tracestate` or
    `baggage`, other propagators)."""
    # Nothing to extract from an empty carrier: extract() would return an empty context.
    parent = propagate.extract(texts) if texts else Context()
    if not trace.get_current_span(parent).get_span_context().is_valid:
        parent = trace.set_span_in_context(_new_root(), parent)
    token = context.attach(parent)
    try:
        # Without an SDK no span is recorded: the work runs in the parent's context as it is.
        with (
            _tracer.start_as_current_span(name, kind=kind, attributes=attributes)
            if _recording()
            else nullcontext(trace.get_current_span(parent))
        ) as span:
            trace_id = format(span.get_span_context().trace_id, "032x")
            with bound_context(trace_id=trace_id):
                yield trace_id
    finally:
        context.detach(token)


def _carried_on(traceparent: str | None) -> tuple[str, str]:
    """The light path of `traced()`: (trace id, `traceparent` to send on) of the incoming
    header if it is valid, else of a new trace (ids from `random`, as in `_new_root`)."""
    parsed = _parse_traceparent(traceparent) if traceparent else None
    if parsed is not None:
        return parsed
    trace_id = format(random.getrandbits(128) or 1, "032x")
    return trace_id, f"00-{trace_id}-{random.getrandbits(64) or 1:016x}-01"


_light_headers: ContextVar[dict[str, str] | None] = ContextVar(
    "taskrelay_trace_headers", default=None
)
"""The headers of the trace `traced()` runs its body under, on the light path."""

_TRACEPARENT_FORMAT = re.compile(
    r"^[ \t]*([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:(-.*)|[ \t]*)$"
)
"""W3C trace context's `traceparent`, as OpenTelemetry's propagator reads it."""
TRACEPARENT_MAX_CHARS = 512


def _parse_traceparent(value: str) -> tuple[str, str] | None:
    """(trace id, the `traceparent` to send on) of a valid header, else None: OpenTelemetry's
    `TraceContextTextMapPropagator` rules (a future version may carry more fields; version
    00 may not; version ff, a zero trace id or a zero parent id is invalid), and the header
    it would inject for the same context."""
    if len(value) > TRACEPARENT_MAX_CHARS:
        return None
    match = _TRACEPARENT_FORMAT.search(value)
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    if trace_id == "0" * 32 or span_id == "0" * 16 or version == "ff":
        return None
    if version == "00" and rest:
        return None
    return trace_id, f"00-{trace_id}-{span_id}-{flags}"


@cache
def propagated_fields() -> frozenset[str]:
    """The (lower-case) header names the configured propagators read and write: a carrier
    needs no other (`traceparent`, `tracestate` and `baggage` by default). The propagators
    are set when OpenTelemetry is imported (`OTEL_PROPAGATORS`), so this is asked once."""
    return frozenset(field.lower() for field in propagate.get_global_textmap().fields)


def bounded_carrier(texts: dict[str, str]) -> dict[str, str]:
    """The carrier without a `baggage` over 512 bytes and with `tracestate` cut to whole
    entries within 512 characters (the rest, `traceparent` first, is kept as it is)."""
    baggage = texts.get("baggage")
    if baggage is not None and len(baggage.encode("utf-8", "surrogateescape")) > MAX_BAGGAGE_BYTES:
        del texts["baggage"]
    state = texts.get("tracestate")
    if state is not None and len(state) > MAX_TRACESTATE_CHARS:
        kept: list[str] = []
        for entry in state.split(","):
            if len(",".join([*kept, entry])) > MAX_TRACESTATE_CHARS:
                break
            kept.append(entry)
        texts["tracestate"] = ",".join(kept)
        if not kept:
            del texts["tracestate"]
    return texts


def trace_headers() -> dict[str, str]:
    """The current context as W3C headers (`traceparent`, maybe `tracestate`); {} outside."""
    light = _light_headers.get()
    if light is not None:
        return dict(light)
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id in a `traceparent` value, or None when it is not a valid one."""
    parsed = _parse_traceparent(traceparent) if traceparent else None
    return parsed[0] if parsed else None


def recording() -> bool:
    """Whether spans are recorded (an SDK is installed): `shared.observability.spans` asks before
    any work."""
    return _recording()


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


def _light() -> bool:
    """Whether `traced()` may take its light path: no SDK records spans, and the propagators
    are OpenTelemetry's defaults (`OTEL_PROPAGATORS` unset, or the same two)."""
    return not _recording() and propagated_fields() == W3C_FIELDS


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
