"""Generation at the speed of the model, shared fairly: the figures of protocol §8b in one run.

Usage: .venv/bin/python -m bench.fairness [--processes 2] [--bulk-tasks 6] [--bulk-items 400]

One system (api, relay, `taskrelay worker --processes N`, the worker's own defaults for item
concurrency and slices) on a fresh database, vhost and Redis db, with the `paced` generator:
each item waits as long as its task says (like a call to a remote model) and uses no CPU. Every
time is taken at a WebSocket on the task, from just before its `POST /api/v1/tasks`:

1. one task of 40 items at 0.25 s each: until its final frame (one at a time would take 10 s);
2. user A's `--bulk-tasks` tasks of `--bulk-items` items at 0.1 s, then, once A's work runs,
   user B's 2-item task: B's first item frame and B's final frame;
3. user C's task of `--bulk-items` items alone, then again beside A's tasks: the ratio;
4. whether every item of every task was generated exactly once;
5. a task cancelled while its items are in flight (they all finish after the cancel), then
   retried: the retry's answer and the final status.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from harness import fairness
from harness import resources as res
from harness.system import running
from harness.wait import wait_until
from shared.config.settings import LoggingSettings
from shared.observability.logging import configure_logging


async def measure(env: dict[str, str], args: argparse.Namespace) -> int:
    async with running(env, processes=args.processes) as system:
        url, made, items = system.base_url, [], {}

        def keep(task: fairness.Timed, count: int) -> fairness.Timed:
            made.append(task)
            items[task.task_id] = count
            return task

        single = keep(await fairness.ask(url, "solo", 40, 0.25, tag="s"), 40)
        took = await single.wait_finished(60)
        print(
            f"1. one task, 40 items x 0.25 s: {took:.2f} s (one at a time: 10 s; {10 / took:.1f}x)"
        )

        bulk = [
            keep(
                await fairness.ask(url, "bulk-a", args.bulk_items, 0.1, tag=f"a{n}-"),
                args.bulk_items,
            )
            for n in range(args.bulk_tasks)
        ]

        async def running_bulk() -> bool:
            return any(t.first_item is not None for t in bulk)

        await wait_until(running_bulk, within=30, what="A's first item")
        newcomer = keep(await fairness.ask(url, "newcomer-b", 2, 0.1, tag="b"), 2)
        done = await newcomer.wait_finished(120)
        unfinished = sum(t.finished is None for t in bulk)
        print(
            f"2. behind A's {args.bulk_tasks} x {args.bulk_items} items: B's first item frame "
            f"{newcomer.first_item:.2f} s, final frame {done:.2f} s after its create "
            f"(A's tasks still unfinished then: {unfinished})"
        )
        await fairness.finish_all(bulk, 600)

        alone = keep(
            await fairness.ask(url, "user-c", args.bulk_items, 0.1, tag="c"), args.bulk_items
        )
        alone_s = await alone.wait_finished(600)
        beside_bulk = [
            keep(
                await fairness.ask(url, "bulk-a", args.bulk_items, 0.1, tag=f"x{n}-"),
                args.bulk_items,
            )
            for n in range(args.bulk_tasks)
        ]
        beside = keep(
            await fairness.ask(url, "user-c", args.bulk_items, 0.1, tag="d"), args.bulk_items
        )
        beside_s = await beside.wait_finished(600)
        a_done = sum(t.finished is not None for t in beside_bulk)
        print(
            f"3. C's {args.bulk_items} items: alone {alone_s:.2f} s, beside A's {args.bulk_tasks} "
            f"tasks {beside_s:.2f} s ({beside_s / alone_s:.2f}x; A's tasks done by then: {a_done})"
        )
        await fairness.finish_all([*beside_bulk, single, newcomer, alone, beside], 600)
        once = fairness.generated_once(env["REDIS_URL"], made, items)
        total = sum(items.values())
        print(f"4. every item of {len(made)} tasks ({total} items) generated exactly once: {once}")

        race = await fairness.cancel_in_flight_then_retry(url, "racer", 8)
        print(f"5. cancelled with 8 items in flight, then retried: {race}")
        return 0 if once and race["final_status"] == "completed" else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", type=int, default=2, help="RQ processes")
    parser.add_argument("--bulk-tasks", type=int, default=6)
    parser.add_argument("--bulk-items", type=int, default=400)
    args = parser.parse_args()
    configure_logging("bench", LoggingSettings(level="WARNING"))
    with res.isolated("taskrelay_bench") as resources:
        env = resources.env(
            TASKRELAY_CONTENT_GENERATOR="harness.generators:paced",
            TASKRELAY_API_RATE_LIMIT_PER_SECOND="0",
        )
        code = asyncio.run(measure(env, args))
    print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    return code


if __name__ == "__main__":
    sys.exit(main())
