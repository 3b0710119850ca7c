"""`taskrelay worker --metrics-port`: 0 turns the probes off, a port must be a port."""

from __future__ import annotations

import pytest

from services.cli import build_parser
from services.worker.metrics import DEFAULT_METRICS_PORT, WorkerMetrics, start_probe_server


def test_the_default_port_is_8002_and_0_is_accepted() -> None:
    parser = build_parser()
    assert parser.parse_args(["worker"]).metrics_port == DEFAULT_METRICS_PORT == 8002
    assert parser.parse_args(["worker", "--metrics-port", "0"]).metrics_port == 0


@pytest.mark.parametrize("port", ["-1", "65536", "http"])
def test_a_port_out_of_range_is_refused(port: str) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["worker", "--metrics-port", port])


async def test_port_0_serves_nothing() -> None:
    metrics = WorkerMetrics()
    try:
        assert await start_probe_server(metrics, "127.0.0.1", 0, lambda: None) is None
    finally:
        metrics.remove()
