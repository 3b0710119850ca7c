"""`/metrics`, `/livez` and `/readyz` of `taskrelay worker` (protocol §10), on --metrics-port.

The supervisor counts what it does itself (job messages acked or dead-lettered, tasks the
reconciler recovered) on a registry of its own, and adds what its RQ work horses wrote under
the metrics directory it gives them (items by outcome, item durations: see
shared.observability.metrics). A port that is taken (a second worker on the same host) costs one
warning, not the worker.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

from shared.observability.logging import get_logger
from shared.observability.metrics import MULTIPROC_DIR, collect_directory
from shared.observability.probe_server import ProbeServer, probe_routes
from shared.service.recovery import Action

log = get_logger(__name__)

DEFAULT_METRICS_PORT = 8002


class WorkerMetrics:
    """The supervisor's series, and the directory its RQ processes write theirs to."""

    def __init__(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="taskrelay-worker-metrics-")
        self.registry = r = CollectorRegistry()
        collect_directory(r, self.directory)
        self.job_messages = Counter(
            "taskrelay_worker_job_messages",
            "Job messages settled: acked (enqueued or duplicate), dead_lettered, requeued",
            ["outcome"],
            registry=r,
        )
        self.recovered = Counter(
            "taskrelay_worker_recovered_tasks",
            "Tasks the reconciler gave work again after a fault, by what it did",
            ["action"],
            registry=r,
        )
        self.rq_processes = Gauge(
            "taskrelay_worker_rq_processes", "RQ worker processes running", registry=r
        )
        # Known label values exist from the start, so a dashboard's query finds them at 0.
        for outcome in ("acked", "dead_lettered", "requeued"):
            self.job_messages.labels(outcome)
        for action in Action:
            self.recovered.labels(str(action))

    def child_environment(self) -> dict[str, str]:
        """The environment of an RQ worker process: its metrics go to this directory."""
        return {**os.environ, MULTIPROC_DIR: self.directory}

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


async def start_probe_server(
    metrics: WorkerMetrics, host: str, port: int, not_ready: Callable[[], str | None]
) -> ProbeServer | None:
    """Serve the probes; None when turned off (port 0) or when the port is taken."""
    if port == 0:
        return None
    server = ProbeServer(probe_routes(not_ready, metrics.registry), host, port)
    try:
        await server.start()
    except OSError as exc:
        log.warning(
            "worker_metrics_port_unavailable",
            where=server.where,
            error=exc.strerror or str(exc),
            hint="another worker on this host serves it; choose one with --metrics-port",
        )
        return None
    log.info("worker_metrics_serving", metrics=f"{server.where}/metrics")
    return server
