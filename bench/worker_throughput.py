"""Content items per second through the whole worker path, with a generator that costs nothing.

Usage: .venv/bin/python -m bench.worker_throughput [--tasks 8] [--items 100] [--processes 1 2]
       [--workers 1 2]

For each process count: a fresh `taskrelay worker --processes N` (generator
`harness.generators:instant`) and one relay on a fresh database, vhost and Redis db;
`--tasks` tasks of `--items` items each are created at once (as the API does), and the clock
runs from their commit until every task is final. What it measures is the worker's own cost per
item: lease check, one transaction that stores the item, counts all items and writes the
notification, plus the job's start (relay publish, consume, inbox, RQ enqueue, fork).
Per-item overhead = N processes / (items per second), in milliseconds of one process; the
CPU the worker's processes (supervisor, RQ workers, work horses) spent per item is printed
too, as it depends less on what else the machine is doing.
`--workers 1 2 --processes 1` is the scale-out figure: one `taskrelay worker` against two (each
with its own consumer and RQ process) sharing the job queue and Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import sys
import time
from uuid import UUID

from bench.procstat import cpu_seconds
from harness import resources as res
from harness.processes import Process, stop_all
from harness.relay import start_relay
from harness.worker import start_worker, task_row
from shared.adapters.postgres import UnitOfWorkFactory
from shared.config.settings import LoggingSettings, Settings
from shared.domain import FINAL
from shared.observability.logging import configure_logging
from shared.service.tasks import NewTask, create_task


async def create_tasks(uow_factory: UnitOfWorkFactory, tasks: int, items: int) -> list[UUID]:
    ids = []
    for _ in range(tasks):
        concepts = [(f"c{i}", f"Concept {i}") for i in range(items)]
        async with uow_factory() as uow:
            view = await create_task(uow, "bench", NewTask("bench", concepts, ["tutorial"]))
            await uow.commit()
        ids.append(view.task_id)
    return ids


async def wait_final(uow_factory: UnitOfWorkFactory, ids: list[UUID], limit: float) -> None:
    deadline = time.monotonic() + limit
    remaining = set(ids)
    while remaining:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{len(remaining)} tasks not final after {limit} s")
        for task_id in list(remaining):
            if (await task_row(uow_factory, task_id)).status in FINAL:
                remaining.discard(task_id)
        await asyncio.sleep(0.05)


async def measure(
    env: dict[str, str],
    settings: Settings,
    processes: int,
    workers_count: int,
    args: argparse.Namespace,
) -> tuple[float, float]:
    """(items per second, CPU ms per item of the worker's processes and their work horses)."""
    uow_factory = UnitOfWorkFactory(settings.database, pool_size=4)
    workers: list[Process] = []
    try:
        for n in range(workers_count):
            workers.append(start_worker(env, processes, name=f"bench-worker-{processes}-{n}"))
        pids = [pid for w in workers for pid in (w.pid, *rq_pids(w.output()))]
        cpu_before = sum(cpu_seconds(pid, children=True) for pid in pids)
        started = time.monotonic()
        ids = await create_tasks(uow_factory, args.tasks, args.items)
        await wait_final(uow_factory, ids, limit=600)
        elapsed = time.monotonic() - started
        cpu = sum(cpu_seconds(pid, children=True) for pid in pids) - cpu_before
    finally:
        stop_all(workers)
        await uow_factory.close()
    items = args.tasks * args.items
    return items / elapsed, 1000.0 * cpu / items


def rq_pids(log: str) -> list[int]:
    for line in log.splitlines():
        if line.startswith("{") and '"worker_started"' in line:
            return [int(pid) for pid in json.loads(line)["rq_pids"]]
    raise RuntimeError("the worker did not log its RQ worker pids")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--workers", type=int, nargs="+", default=[1], help="worker instances")
    args = parser.parse_args()
    configure_logging("bench", LoggingSettings(level="WARNING"))  # the figures, not every line
    with res.isolated("taskrelay_bench") as resources:
        env = resources.env(TASKRELAY_CONTENT_GENERATOR="harness.generators:instant")
        relay = start_relay(env, name="bench-relay")
        try:
            settings = Settings.from_env(env)
            print(f"{args.tasks} tasks x {args.items} items, generator costs nothing")
            for workers, processes in itertools.product(args.workers, args.processes):
                rate, cpu_ms = asyncio.run(measure(env, settings, processes, workers, args))
                overhead_ms = 1000.0 * processes * workers / rate
                print(
                    f"workers={workers} processes={processes}: {rate:8.1f} items/s, "
                    f"per-item overhead {overhead_ms:6.2f} ms per process (wall), "
                    f"{cpu_ms:5.2f} ms CPU of the worker per item"
                )
            print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
        finally:
            relay.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
