"""Worker test helpers: start `taskrelay worker`, watch tasks and their outbox rows.

Starting a relay is `tests.support.relay.start_relay`; publishing an outbox row again, as the
relay does, is `tests.support.republish`.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from uuid import UUID

import redis
from rq import Worker

from shared.adapters.postgres import UnitOfWorkFactory
from shared.domain import FINAL
from tests.support import sql
from tests.support.processes import Process
from tests.support.wait import wait_until, wait_until_sync


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


async def wait_for_status(
    uow_factory: UnitOfWorkFactory,
    task_id: UUID,
    statuses: Collection[str] = FINAL,
    within: float = 60,
) -> Any:
    async def reached() -> Any:
        row = await task_row(uow_factory, task_id)
        return row if row.status in statuses else None

    return await wait_until(reached, within=within, interval=0.2, what=f"task in {statuses}")


async def item_counts(uow_factory: UnitOfWorkFactory, task_id: UUID) -> dict[str, int]:
    query = "SELECT status FROM content_items WHERE task_id = $1"
    statuses = [row[0] for row in await sql.fetch(uow_factory, query, task_id)]
    return {s: statuses.count(s) for s in ("pending", "completed", "failed")}


async def outbox_payloads(
    uow_factory: UnitOfWorkFactory, task_id: UUID, kind: str
) -> list[dict[str, Any]]:
    """The payloads of the task's outbox rows of one kind, in commit order."""
    query = "SELECT payload FROM outbox WHERE task_id = $1 AND kind = $2 ORDER BY id"
    return [row[0] for row in await sql.fetch(uow_factory, query, task_id, kind)]


async def notifications(uow_factory: UnitOfWorkFactory, task_id: UUID) -> list[dict[str, Any]]:
    return await outbox_payloads(uow_factory, task_id, "notification")


async def item_statuses(uow_factory: UnitOfWorkFactory, task_id: UUID) -> dict[str, str]:
    query = "SELECT concept_id, status FROM content_items WHERE task_id = $1"
    return {r["concept_id"]: r["status"] for r in await sql.fetch(uow_factory, query, task_id)}


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
