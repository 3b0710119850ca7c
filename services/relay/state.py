"""What the relay knows about itself, for `/health` (protocol §10) and Prometheus `/metrics`.

The loops write here; the health server only reads. Each dependency keeps the reason it is
down, so an operator sees which one failed and why, not only that something did.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class RelayMetrics:
    """The Prometheus series, on a registry of this process's own (no global state)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.backlog = Gauge(
            "taskrelay_relay_backlog", "Outbox rows waiting to be published", registry=r
        )
        self.oldest_pending_age = Gauge(
            "taskrelay_relay_oldest_pending_age_seconds",
            "Age of the oldest unpublished outbox row (0 when none)",
            registry=r,
        )
        self.parked = Gauge(
            "taskrelay_relay_parked", "Outbox rows parked after repeated failures", registry=r
        )
        self.published = Counter(
            "taskrelay_relay_published", "Rows confirmed by the broker", ["kind"], registry=r
        )
        self.unroutable = Counter(
            "taskrelay_relay_unroutable",
            "Notifications returned because no queue was bound (counted as published)",
            registry=r,
        )
        self.failed = Counter(
            "taskrelay_relay_publish_failed",
            "Publishes that failed (row failures and lost connections)",
            ["reason"],
            registry=r,
        )
        self.latency = Histogram(
            "taskrelay_relay_publish_latency_seconds",
            "From the outbox row's commit to the broker's confirm (confirms of marked rows)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        for reason in ("row", "connection"):
            self.failed.labels(reason)  # at 0 from the start, for dashboards and alerts
        self.active = Gauge(
            "taskrelay_relay_active", "1 when this relay owns partitions", registry=r
        )
        self.partitions_owned = Gauge(
            "taskrelay_relay_partitions_owned", "Outbox partitions this relay owns", registry=r
        )
        self.partitions = Gauge(
            "taskrelay_relay_partitions", "Outbox partitions of the deployment", registry=r
        )
        self.since_last_publish = Gauge(
            "taskrelay_relay_seconds_since_last_publish",
            "Seconds since this relay last had a row confirmed (-1 before the first)",
            registry=r,
        )
        self.database_up = Gauge("taskrelay_relay_database_up", "PostgreSQL reachable", registry=r)
        self.broker_up = Gauge("taskrelay_relay_broker_up", "RabbitMQ reachable", registry=r)


@dataclass(slots=True)
class RelayState:
    lag_alert_seconds: float = 60.0
    owned: frozenset[int] = frozenset()
    database_error: str | None = "not connected yet"
    broker_error: str | None = "not connected yet"
    backlog: int = 0
    oldest_pending_age: float | None = None
    parked: int = 0
    published_total: int = 0
    last_published_at: datetime | None = None
    partitions: int = 1

    @property
    def role(self) -> str:
        return "active" if self.owned else "standby"

    @property
    def status(self) -> str:
        if self.database_error or self.broker_error:
            return "down"
        lagging = (self.oldest_pending_age or 0.0) > self.lag_alert_seconds
        return "degraded" if self.parked or lagging else "ok"

    def published(self, count: int) -> None:
        if count:
            self.published_total += count
            self.last_published_at = datetime.now(UTC)

    def health(self) -> dict[str, Any]:
        """The §10 document, plus why a dependency is down, parked rows and owned partitions."""
        return {
            "status": self.status,
            "role": self.role,
            "database": "down" if self.database_error else "up",
            "broker": "down" if self.broker_error else "up",
            "backlog": self.backlog,
            "oldest_pending_age_seconds": self.oldest_pending_age,
            "published_total": self.published_total,
            "last_published_at": (
                self.last_published_at.isoformat() if self.last_published_at else None
            ),
            "parked": self.parked,
            "errors": {"database": self.database_error, "broker": self.broker_error},
            "partitions": {"count": self.partitions, "owned": sorted(self.owned)},
        }

    def export(self, metrics: RelayMetrics) -> None:
        """Copy the gauges into the Prometheus series (counters are bumped where they happen)."""
        metrics.backlog.set(self.backlog)
        metrics.oldest_pending_age.set(self.oldest_pending_age or 0.0)
        metrics.parked.set(self.parked)
        metrics.active.set(1 if self.owned else 0)
        metrics.partitions_owned.set(len(self.owned))
        metrics.partitions.set(self.partitions)
        last = self.last_published_at
        metrics.since_last_publish.set(
            (datetime.now(UTC) - last).total_seconds() if last is not None else -1
        )
        metrics.database_up.set(0 if self.database_error else 1)
        metrics.broker_up.set(0 if self.broker_error else 1)
