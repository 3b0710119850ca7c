"""Start `taskrelay worker` processes and watch them: their RQ workers, log lines and tasks.

`start_worker` returns once the worker's consumer is attached and its RQ processes registered in
Redis; `log_lines` reads its JSON log; `task_row` reads a task as the database holds it.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from uuid import UUID

import redis
from rq import Worker

from harness import sql
from harness.processes import Process
from harness.wait import wait_until_sync
from shared.adapters.postgres import UnitOfWorkFactory


def rq_workers(redis_url: str) -> set[str]:
    """The names of the RQ workers registered in Redis (a SIGKILLed one's stays until its key
    expires, up to RQ's worker TTL after its last heartbeat)."""
    client = redis.Redis.from_url(redis_url)
    try:
        return {worker.name for worker in Worker.all(connection=client)}
    finally:
        client.close()


def start_worker(
    env: dict[str, str], processes: int = 1, name: str = "worker", metrics_port: int | None = None
) -> Process:
    """A worker whose consumer is attached and whose RQ workers registered in Redis."""
    before = rq_workers(env["REDIS_URL"])
    args = ["worker", "--processes", str(processes)]
    if metrics_port is not None:
        args += ["--metrics-port", str(metrics_port)]
    proc = Process(args, env, name)
    try:
        wait_until_sync(
            lambda: not proc.alive() or "worker_started" in proc.output(),
            within=30,
            what=f"{name} to start",
        )
        assert proc.alive(), f"the worker exited at start-up:\n{proc.output()}"
        # New names, not a count: a worker killed by an earlier test can expire from Redis
        # meanwhile, and a count would then never reach `before + processes`.
        wait_until_sync(
            lambda: len(rq_workers(env["REDIS_URL"]) - before) >= processes,
            within=30,
            what=f"{processes} RQ workers of {name} to register",
        )
    except BaseException:
        proc.stop()
        raise
    return proc


async def task_row(uow_factory: UnitOfWorkFactory, task_id: UUID) -> Any:
    """Every column of the task's row, as attributes (`row.status`)."""
    rows = await sql.fetch(uow_factory, "SELECT * FROM roadmap_tasks WHERE task_id = $1", task_id)
    assert len(rows) == 1, f"task {task_id}: {len(rows)} rows"
    return SimpleNamespace(**dict(rows[0]))


def log_lines(proc: Process) -> list[dict[str, object]]:
    """The JSON lines of a process's output. A worker and its RQ processes share one stdout, and
    a line cut by another process's write (seen under load) is not a line of either: skipped."""
    lines = []
    for line in proc.output().splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return lines


def process_alive(pid: int) -> bool:
    """Alive and not a zombie (a child of a SIGKILLed parent may wait to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in state
