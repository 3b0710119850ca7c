"""`taskrelay run` and `taskrelay demo` as an operator uses them (issue: run it as an operator).

The whole system starts from one command with a secret it generates, a task created over HTTP
completes, `taskrelay demo` finds the running system by itself and prints the seed story
fixed, and SIGTERM stops every child with exit code 0.
"""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from harness.processes import Process, free_port, refused_in_one_line
from harness.relay import health
from harness.resources import Resources
from harness.wait import wait_until_sync


def _call(url: str, token: str, body: Any = None) -> dict[str, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    request.add_header("Authorization", f"Bearer {token}")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as response:
        parsed: dict[str, Any] = json.loads(response.read())
        return parsed


def started_children(proc: Process, every: bool = False) -> Any:
    """{child name: its latest pid} from the supervisor's `child_started` lines (or all)."""
    started = [
        (entry["child"], entry["pid"])
        for line in proc.output().splitlines()
        if line.startswith("{") and '"child_started"' in line
        for entry in [json.loads(line)]
    ]
    return started if every else dict(started)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes: it has exited and waits to be reaped.
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


def _secret_in_environment(pid: int) -> bool:
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return any(entry.startswith(b"TASKRELAY_SECRET=") for entry in environ)


@pytest.fixture(name="system")
def system_fixture(resources: Resources, tmp_path: Path) -> Any:
    env = resources.env(XDG_RUNTIME_DIR=str(tmp_path))
    del env["TASKRELAY_SECRET"]  # run generates its own, and demo must find it
    port, health_port = free_port(), free_port()
    proc = Process(
        ["run", "--port", str(port), "--health-port", str(health_port), "--processes", "1"],
        env,
        "run",
    )
    try:
        wait_until_sync(
            lambda: "demo task" in proc.output() or not proc.alive(), within=90, what="the banner"
        )
        assert proc.alive(), proc.output()[-3000:]
        wait_until_sync(lambda: health(health_port, status="ok"), within=30)
        yield proc, port, health_port, env
    finally:
        proc.stop()


def test_run_serves_demo_and_stops_cleanly(system: Any) -> None:
    proc, port, health_port, env = system
    base = f"http://127.0.0.1:{port}"
    state_dir = Path(env["XDG_RUNTIME_DIR"]) / f"taskrelay-{os.getuid()}"
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700  # the generated secret's home
    assert stat.S_IMODE((state_dir / "run.json").stat().st_mode) == 0o600
    token = re.search(r"token\s+(\S+)", proc.output())
    assert token, proc.output()[-2000:]
    secrets = {name: _secret_in_environment(pid) for name, pid in started_children(proc).items()}
    assert secrets == {"api": True, "relay": False, "worker": False}  # only where it is used
    created = _call(
        f"{base}/api/v1/tasks",
        token.group(1),
        {"roadmap_id": "ops", "concepts": [{"concept_id": "a", "title": "A"}]},
    )
    task_url = f"{base}/api/v1/tasks/{created['task_id']}"
    wait_until_sync(
        lambda: _call(task_url, token.group(1))["status"] == "completed",
        within=60,
        what="the task to complete",
    )

    demo = subprocess.run(
        [sys.executable, "-m", "services.cli", "demo", "--timeout", "150"],
        env=env,
        capture_output=True,
        text=True,
        timeout=200,
    )
    out = demo.stdout
    assert demo.returncode == 0, out + demo.stderr
    assert "status: partial_failure (11 completed, 10 failed)" in out
    assert "Retrying 10 failed content items" in out
    assert "status: completed (21 of 21 completed)" in out
    assert f"task page: {base}/tasks/" in out

    relay = started_children(proc)["relay"]
    os.kill(relay, signal.SIGKILL)  # a child that dies is reported and restarted
    wait_until_sync(
        lambda: started_children(proc)["relay"] != relay, within=30, what="the relay restarted"
    )
    assert '"child_exited"' in proc.output()
    wait_until_sync(lambda: health(health_port, status="ok"), within=30)

    children = [pid for name, pid in started_children(proc, every=True)]
    assert len(children) >= 4
    started = time.monotonic()
    assert proc.stop(timeout=40) == 0, proc.output()[-3000:]
    assert time.monotonic() - started < 30
    assert not [pid for pid in children if _alive(pid)]


def test_run_keeps_its_state_privately_beside_a_planted_directory(
    resources: Resources, tmp_path: Path
) -> None:
    """Another user made `taskrelay-<uid>` first (0777): `run` still starts, keeps the
    generated secret in a private `mkdtemp` directory beside it, `demo`'s lookup finds it
    there, and it is gone once `run` stops."""
    planted = tmp_path / f"taskrelay-{os.getuid()}"
    planted.mkdir()
    planted.chmod(0o777)
    env = resources.env(XDG_RUNTIME_DIR=str(tmp_path))
    del env["TASKRELAY_SECRET"]
    args = ["run", "--port", str(free_port()), "--health-port", str(free_port())]
    proc = Process([*args, "--processes", "1"], env, "run-fallback")
    try:
        wait_until_sync(
            lambda: "demo task" in proc.output() or not proc.alive(), within=90, what="the banner"
        )
        assert proc.alive(), proc.output()[-3000:]
        [fallback] = tmp_path.glob(f"taskrelay-{os.getuid()}-*")
        assert stat.S_IMODE(fallback.stat().st_mode) == 0o700
        assert stat.S_IMODE((fallback / "run.json").stat().st_mode) == 0o600
        assert list(planted.iterdir()) == []
        found = subprocess.run(
            [sys.executable, "-c", "from services.run import state; print(state.load().api_url)"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert found.stdout.startswith("http://127.0.0.1:"), found.stdout + found.stderr
    finally:
        assert proc.stop(timeout=40) == 0, proc.output()[-3000:]
    assert not list(tmp_path.glob(f"taskrelay-{os.getuid()}-*"))


@pytest.mark.parametrize(
    ("variable", "service", "start"),
    [
        ("DATABASE_URL", "PostgreSQL", "pg_ctlcluster"),
        ("AMQP_URL", "RabbitMQ", "rabbitmq-server -detached"),
        ("REDIS_URL", "Redis", "redis-server --daemonize yes"),
    ],
)
def test_run_names_the_missing_service_and_how_to_start_it(
    resources: Resources, variable: str, service: str, start: str
) -> None:
    scheme = {"DATABASE_URL": "postgresql", "AMQP_URL": "amqp", "REDIS_URL": "redis"}[variable]
    env = resources.env(**{variable: f"{scheme}://u:secret@127.0.0.1:{free_port()}/x"})
    line = refused_in_one_line(["run", "--port", str(free_port())], env)
    assert line.startswith(f"taskrelay run: {service} is unreachable at {scheme}://u:***@")
    assert start in line
