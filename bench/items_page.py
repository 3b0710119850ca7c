"""How long one page of `GET /api/v1/tasks/{task_id}/items` costs at 3,000 items, at the start,
the middle and the end of the listing, with and without a status filter; prints the figures and
PostgreSQL's plan (an index scan on `content_items_position_idx` / `content_items_status_idx`,
no OFFSET, no sort).

Usage: .venv/bin/python -m bench.items_page [--tasks 40] [--repeat 200]

A fresh database holds `--tasks` tasks of 1,000 concepts x 3 types (made through the product's
`create_task`), so the table is large and a missing index would show; every 7th item of the
measured task is failed. The listing service runs in-process on the real database: what is
measured is the database round trip and the service, not HTTP.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from uuid import UUID

from harness import resources as res
from harness import sql
from shared.adapters.postgres import UnitOfWorkFactory
from shared.config.settings import Settings
from shared.service import NewTask, create_task, list_items

OWNER = "bench"


async def seed(uow_factory: UnitOfWorkFactory, tasks: int) -> UUID:
    concepts = [(f"c{i:04d}", f"Concept {i}") for i in range(1000)]
    new = NewTask("bench", concepts, ["tutorial", "resources", "quiz"])
    task_ids = []
    for _ in range(tasks):
        async with uow_factory() as uow:
            task_ids.append((await create_task(uow, OWNER, new)).task_id)
            await uow.commit()
    target = task_ids[len(task_ids) // 2]
    async with sql.connection(uow_factory) as conn:
        await conn.execute(
            "UPDATE content_items SET status = CASE WHEN position % 7 = 3 THEN 'failed' "
            "ELSE 'completed' END, last_error = CASE WHEN position % 7 = 3 THEN 'boom' END "
            "WHERE task_id = $1 AND position < 2400",
            target,
        )
        await conn.execute("ANALYZE content_items")
    return target


async def cursors(
    uow_factory: UnitOfWorkFactory, task_id: UUID, status: str | None
) -> list[str | None]:
    """The cursor of every page of 100, walked once (the first page's is None)."""
    found: list[str | None] = [None]
    async with uow_factory() as uow:
        while True:
            page = await list_items(uow, OWNER, task_id, status=status, cursor=found[-1])
            if page.next is None:
                return found
            found.append(page.next)


async def measure(uow_factory: UnitOfWorkFactory, task_id: UUID, repeat: int) -> None:
    for status in (None, "failed", "pending"):
        pages = await cursors(uow_factory, task_id, status)
        for where, cursor in (("first", pages[0]), ("middle", pages[len(pages) // 2]),
                              ("last", pages[-1])):  # fmt: skip
            took = []
            async with uow_factory() as uow:
                for _ in range(repeat):
                    start = time.perf_counter()
                    await list_items(uow, OWNER, task_id, status=status, cursor=cursor)
                    took.append(1000 * (time.perf_counter() - start))
            took.sort()
            print(
                f"status={status or 'any':9} {where:6} page of {len(pages):2}: "
                f"median {statistics.median(took):.2f} ms, p95 {took[int(0.95 * len(took))]:.2f} ms"
            )


async def plans(uow_factory: UnitOfWorkFactory, task_id: UUID) -> None:
    for label, condition in (("any status", ""), ("status=failed", "AND status = 'failed' ")):
        explain = (
            "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) SELECT * FROM content_items "
            f"WHERE task_id = $1 AND position > 1500 {condition}ORDER BY position LIMIT 101"
        )
        print(f"plan, {label}:")
        for row in await sql.fetch(uow_factory, explain, task_id):
            print("   ", row[0])


async def main(tasks: int, repeat: int) -> None:
    with res.isolated("taskrelay_bench_items") as resources:
        settings = Settings.from_env(resources.env())
        uow_factory = UnitOfWorkFactory(settings.database)
        try:
            started = time.perf_counter()
            task_id = await seed(uow_factory, tasks)
            print(f"seeded {tasks} tasks x 3,000 items in {time.perf_counter() - started:.1f} s")
            await measure(uow_factory, task_id, repeat)
            await plans(uow_factory, task_id)
        finally:
            await uow_factory.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=40)
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.tasks, args.repeat))
