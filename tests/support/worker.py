"""Worker test helpers: start `taskrelay worker`, watch tasks and their outbox rows.

Starting a relay is `tests.support.relay.start_relay`; publishing an outbox row again, as the
relay does, is `tests.support.republish`.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any
from uuid import UUID

import redis
from rq import Worker
from sqlalchemy import select

from shared.adapters.postgres import UnitOfWorkFactory
from shared.adapters.postgres.tables import content_items, outbox, roadmap_tasks
from shared.domain import FINAL
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
    async with uow_factory() as uow:
        query = select(roadmap_tasks).where(roadmap_tasks.c.task_id == task_id)
        return (await uow.connection.execute(query)).one()


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
    async with uow_factory() as uow:
        query = select(content_items.c.status).where(content_items.c.task_id == task_id)
        statuses = [row[0] for row in await uow.connection.execute(query)]
    return {s: statuses.count(s) for s in ("pending", "completed", "failed")}


async def outbox_payloads(
    uow_factory: UnitOfWorkFactory, task_id: UUID, kind: str
) -> list[dict[str, Any]]:
    """The payloads of the task's outbox rows of one kind, in commit order."""
    async with uow_factory() as uow:
        query = (
            select(outbox.c.payload)
            .where(outbox.c.task_id == task_id, outbox.c.kind == kind)
            .order_by(outbox.c.id)
        )
        return [row[0] for row in await uow.connection.execute(query)]


async def notifications(uow_factory: UnitOfWorkFactory, task_id: UUID) -> list[dict[str, Any]]:
    return await outbox_payloads(uow_factory, task_id, "notification")


async def item_statuses(uow_factory: UnitOfWorkFactory, task_id: UUID) -> dict[str, str]:
    async with uow_factory() as uow:
        query = select(content_items.c.concept_id, content_items.c.status).where(
            content_items.c.task_id == task_id
        )
        return {r.concept_id: r.status for r in await uow.connection.execute(query)}


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
