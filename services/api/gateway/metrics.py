"""The gateway's Prometheus series: sockets, watched tasks, frames, disconnects, resyncs, and
`taskrelay_gateway_delivery_seconds`, the project's headline figure.

Delivery is measured per progress frame, from its outbox row's commit (the header
`x-committed-at-us` the relay copies from the row) to the moment the frame was written, so it
spans the relay, the broker, the gateway's queue, the ordering and the socket write. Clocks of
different hosts enter it: run them under NTP.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from services.api.gateway.close_codes import CLIENT_GONE, CloseCode, metric_label

DELIVERY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.delivery = Histogram(
            "taskrelay_gateway_delivery_seconds",
            "From the outbox row's commit to its frame written on a socket (one per frame sent)",
            buckets=DELIVERY_BUCKETS,
            registry=r,
        )
        self.sockets = Gauge("taskrelay_gateway_sockets", "Open task sockets", registry=r)
        self.watched = Gauge(
            "taskrelay_gateway_watched_tasks", "Tasks watched by at least one socket", registry=r
        )
        self.frames = Counter(
            "taskrelay_gateway_frames_sent",
            "Frames written to sockets, by type (snapshot, progress, reply)",
            ["type"],
            registry=r,
        )
        self.disconnects = Counter(
            "taskrelay_gateway_disconnects",
            "Sockets ended, by close code (client_gone: the client left first)",
            ["code"],
            registry=r,
        )
        self.resyncs = Counter(
            "taskrelay_gateway_resyncs",
            "Fresh snapshots sent to an open socket (broker link rebuilt, or a gap too long)",
            registry=r,
        )
        # Known label values exist from the start, so a dashboard's query finds them at 0.
        for kind in ("snapshot", "progress", "reply"):
            self.frames.labels(kind)
        for code in (CLIENT_GONE, *CloseCode):
            self.disconnects.labels(metric_label(code))

    def track(self, sockets: Callable[[], int], watched: Callable[[], int]) -> None:
        """Read the gauges from the live gateway at each scrape."""
        self.sockets.set_function(sockets)
        self.watched.set_function(watched)

    def sent(self, kind: str, committed_at: float | None = None) -> None:
        self.frames.labels(kind).inc()
        if committed_at is not None:
            self.delivery.observe(max(0.0, time.time() - committed_at))
