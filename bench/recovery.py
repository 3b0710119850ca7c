"""Time to recover from each fault of docs/protocol.md §8a, with the worker's DEFAULT settings.

`tests/e2e/test_nothing_stuck.py` proves every task finishes by itself, with short leases so the
suite stays quick; this measures what an operator gets out of the box (lease 30 s, stale after
30 s, a sweep every 5 s): the time from the fault's end to the last task done, and how many
items were generated twice.

    .venv/bin/python -m bench.recovery [--tasks 8] [--concepts 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from uuid import UUID

from harness import generators
from harness import resources as res
from harness.servers import PrivatePostgres, PrivateRedis
from harness.system import TYPES, System, fault_env, running
from harness.wait import wait_until
from harness.worker import start_worker

Fault = Callable[[System], Awaitable[None]]


async def started(system: System, ids: list[UUID], items: int) -> None:
    async def enough() -> bool:
        return await system.completed_items(ids) >= items

    await wait_until(enough, within=120, interval=0.2, what=f"{items} items completed")


async def measure(
    name: str, env: dict[str, str], counts_url: str, fault: Fault, args: argparse.Namespace
) -> None:
    async with running(env) as system:
        ids = await system.create(args.tasks, args.concepts)
        await started(system, ids, args.tasks)
        await fault(system)
        ended = time.monotonic()
        rows = await system.all_final(ids, within=600)
        took = time.monotonic() - ended
        statuses = sorted({r.status for r in rows.values()})
    system.worker.stop()  # a worker the fault started in place of the first
    doubled = sum(sum(1 for n in generators.calls(counts_url, t).values() if n > 1) for t in ids)
    total = args.tasks * args.concepts * len(TYPES)
    print(f"{name:<44} {took:6.1f} s   {doubled:3d} of {total} twice   {statuses}")


async def main(args: argparse.Namespace) -> None:
    print(f"{'fault (default worker settings)':<44} {'recovered in':>8}")
    with res.isolated("bench_recovery") as resources:
        env = fault_env(resources, defaults=True)

        async def kill_worker(system: System) -> None:
            system.worker.kill()
            system.worker = start_worker(env, 2, name="worker-bench-second")

        await measure(
            "worker SIGKILLed mid-job, another started", env, resources.redis_url, kill_worker, args
        )

    with PrivatePostgres() as postgres, res.isolated_on("bench_pg", postgres=postgres) as resources:
        env = fault_env(resources, defaults=True)

        async def stop_postgres(system: System) -> None:
            postgres.stop("fast")
            await asyncio.sleep(2)
            postgres.start()

        await measure("PostgreSQL stopped for 2 s", env, resources.redis_url, stop_postgres, args)

    with PrivateRedis() as redis, res.isolated_on("bench_redis", redis=redis) as resources:
        owner = res.run_id()
        db = res.claim_redis_db(owner)
        counts = f"{res.REDIS_BASE}/{db}"
        env = fault_env(resources, defaults=True, TASKRELAY_TEST_COUNTS_URL=counts)

        async def restart_redis(_: System) -> None:
            redis.restart()

        try:
            await measure("Redis restarted empty", env, counts, restart_redis, args)
        finally:
            res.release_redis_db(db, owner)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tasks", type=int, default=8)
    parser.add_argument("--concepts", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
