"""Start-up: a relay whose dependency is unreachable exits 1 with one line saying which and how."""

from __future__ import annotations

import subprocess

import pytest

from harness.processes import TASKRELAY, free_port
from harness.relay import start_relay
from harness.resources import Resources

pytestmark = pytest.mark.slow


def _run_relay(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TASKRELAY, "relay", "--health-port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    return result.stderr.strip().splitlines()[-1]


def test_unreachable_broker_is_one_line_and_status_1(resources: Resources) -> None:
    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}/"
    result = _run_relay(resources.env(AMQP_URL=dead))
    assert result.returncode == 1
    line = _last_line(result)
    assert line.startswith("taskrelay relay: RabbitMQ is unreachable at amqp://guest:***@127.0.0.1")
    assert "Start it with" in line
    assert "Traceback" not in result.stderr


def test_unreachable_database_is_one_line_and_status_1(resources: Resources) -> None:
    dead = f"postgresql://postgres@127.0.0.1:{free_port()}/taskrelay"
    result = _run_relay(resources.env(DATABASE_URL=dead))
    assert result.returncode == 1
    assert _last_line(result).startswith("taskrelay relay: PostgreSQL is unreachable at")
    assert "Traceback" not in result.stderr


def test_health_port_in_use_is_one_line_and_status_1(resources: Resources) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*TASKRELAY, "relay", "--health-port", str(port)],
            env=resources.env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"cannot serve health on 127.0.0.1:{port}" in _last_line(result)


def test_a_different_partition_count_is_refused(resources: Resources) -> None:
    running = start_relay(resources.env(), "partitions-1")
    try:
        result = _run_relay(resources.env(TASKRELAY_RELAY_PARTITIONS="4"))
    finally:
        running.stop()
    assert result.returncode == 1
    line = _last_line(result)
    assert "TASKRELAY_RELAY_PARTITIONS=4, but running relays use 1" in line
