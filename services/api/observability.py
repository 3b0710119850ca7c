"""What the API process tells an operator: its metrics, its probes, one access line a request.

`RequestObserver` wraps the whole app (outside routing, where Litestar's own OpenTelemetry
plugin sits, so a 404 counts too): each HTTP request runs under its trace (the `traceparent` it
brought, or a new one), is counted by route template and status with its duration, and gets
one `http_request` log line with its trace id. The lines a request logs are written together,
in one write(2), once it has been answered (`shared.observability.logging.lines_held`). Query
strings are logged with every token and password masked (`shared.config.redaction`).
`/livez`, `/readyz` and `/metrics` need no token (docs/protocol.md §10).
"""

from __future__ import annotations

import time
from typing import Any

from litestar import Request, Response, get
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from opentelemetry.trace import SpanKind
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

from services.api.gateway.metrics import GatewayMetrics
from shared.adapters.probes import Probes
from shared.config.redaction import redact_query
from shared.observability.logging import get_logger, lines_held
from shared.observability.tracing import propagated_fields, traced

log = get_logger("taskrelay.access")

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class ApiMetrics:
    """The API's series, on a registry of its own: HTTP requests and the gateway's."""

    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter(
            "taskrelay_http_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.duration = Histogram(
            "taskrelay_http_request_seconds",
            "Time to answer an HTTP request, by method, route template and status",
            ["method", "route", "status"],
            buckets=HTTP_BUCKETS,
            registry=r,
        )
        self.gateway = GatewayMetrics(r)
        self._answered: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    def answered(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answer and its duration. The series of each (method, route, status) are
        looked up once: `labels()` locks and builds a key on every call (~3 us a request)."""
        # A client may send any token as its method: the unknown ones share one series.
        labels = (method if method in HTTP_METHODS else "OTHER", route, str(status))
        series = self._answered.get(labels)
        if series is None:
            series = self._answered[labels] = (
                self.requests.labels(*labels),
                self.duration.labels(*labels),
            )
        series[0].inc()
        series[1].observe(seconds)


class RequestObserver:
    """ASGI wrapper: trace context, metrics and the access line of every HTTP request."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self._app, self._metrics = app, metrics
        self._trace_headers = {name.encode("latin-1") for name in propagated_fields()}
        """Only these headers can carry the request's trace; the rest need no decoding."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self._app(scope, receive, send)
            return
        status = 500  # unless the app answers: an exception escaping it is a 500
        started = time.perf_counter()

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        method = scope["method"]
        carrier = {
            k.decode("latin-1"): v.decode("latin-1")
            for k, v in scope["headers"]
            if k in self._trace_headers
        }
        # The request's lines (its access line last) go out in one write once it is answered.
        with lines_held(), traced(f"HTTP {method}", carrier, kind=SpanKind.SERVER):
            try:
                await self._app(scope, receive, observed_send)
            finally:
                seconds = time.perf_counter() - started
                route = scope.get("path_template") or "unmatched"
                self._metrics.answered(method, route, status, seconds)
                log.info(
                    "http_request",
                    method=method,
                    path=scope["path"],
                    query=redact_query(scope.get("query_string", b"").decode("latin-1")),
                    route=route,
                    status=status,
                    duration_ms=round(seconds * 1000, 2),
                )


@get("/livez", tags=["operations"], include_in_schema=True, sync_to_thread=False)
def livez() -> str:
    """200 while the process runs."""
    return "live"


@get("/readyz", tags=["operations"])
async def readyz(request: Request[Any, Any, Any]) -> Response[str]:
    """200 when this instance can serve: PostgreSQL answers and the gateway's broker link is up."""
    reasons = []
    probes: Probes = request.app.state.probes
    if not await probes.database_answers():
        reasons.append("PostgreSQL is unreachable")
    gateway = getattr(request.app.state, "gateway", None)
    if gateway is None or not gateway.broker_connected:
        reasons.append("the gateway is not connected to RabbitMQ")
    if reasons:
        return Response("not ready: " + "; ".join(reasons), status_code=503)
    return Response("ready", status_code=200)


@get("/metrics", tags=["operations"], media_type=CONTENT_TYPE_LATEST)
async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    """Prometheus text: HTTP requests, the gateway's sockets, frames and delivery latency."""
    registry: CollectorRegistry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


PROBE_HANDLERS = [livez, readyz, metrics]
