"""Items per second with the built-in `openai` generator, against the stub at 0.5 s per answer.

Usage: .venv/bin/python -m bench.model [--tasks 4] [--items 24] [--processes 2]
       [--max-in-flight 16] [--delay 0.5]

Two figures, each with the stub's peak of requests in flight:
- through the whole system: one relay and `taskrelay worker --processes N` on a fresh database,
  vhost and Redis db, `--tasks` tasks of `--items` items created at once, timed from their
  commit until every task is final. It is bounded by how many items the jobs generate at once
  as well as by the cap;
- the generator alone: two processes (`harness.model_load`) each asking for `--items` x
  `--tasks` / 2 items at once through the generator and its Redis cap, which shows the ceiling
  the cap sets: `max-in-flight / delay` items per second.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.worker_throughput import create_tasks, wait_final
from harness import resources as res
from harness.model_stub import ModelStub
from harness.relay import start_relay
from harness.worker import start_worker
from shared.adapters.postgres import UnitOfWorkFactory
from shared.config.settings import LoggingSettings, Settings
from shared.observability.logging import configure_logging

ROOT = Path(__file__).parents[1]


async def through_system(env: dict[str, str], args: argparse.Namespace) -> float:
    uow_factory = UnitOfWorkFactory(Settings.from_env(env).database, pool_size=4)
    worker = start_worker(env, args.processes, name="bench-model-worker")
    try:
        started = time.monotonic()
        ids = await create_tasks(uow_factory, args.tasks, args.items)
        await wait_final(uow_factory, ids, limit=900)
        return args.tasks * args.items / (time.monotonic() - started)
    finally:
        worker.stop()
        await uow_factory.close()


def generator_alone(env: dict[str, str], args: argparse.Namespace) -> float:
    per_process = args.tasks * args.items // 2
    child_env = {**os.environ, **env, "PYTHONPATH": str(ROOT)}
    started = time.monotonic()
    loads = [
        subprocess.Popen(
            [sys.executable, "-m", "harness.model_load", str(per_process), f"p{n}-"],
            env=child_env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(2)
    ]
    results = [json.loads(p.communicate(timeout=900)[0].strip().splitlines()[-1]) for p in loads]
    elapsed = time.monotonic() - started
    assert all(r["failed"] == 0 for r in results), results
    return 2 * per_process / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--items", type=int, default=24)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--max-in-flight", type=int, default=16)
    parser.add_argument("--delay", type=float, default=0.5)
    args = parser.parse_args()
    configure_logging("bench", LoggingSettings(level="WARNING"))
    ceiling = args.max_in_flight / args.delay
    print(
        f"stub answers in {args.delay} s, TASKRELAY_MODEL_MAX_IN_FLIGHT={args.max_in_flight} "
        f"(ceiling {ceiling:.1f} items/s); {args.tasks} tasks x {args.items} items"
    )
    with res.isolated("taskrelay_bench") as resources, ModelStub(delay=args.delay) as stub:
        env = resources.env(
            TASKRELAY_CONTENT_GENERATOR="openai",
            TASKRELAY_MODEL="stub-model",
            OPENAI_BASE_URL=stub.url,
            OPENAI_API_KEY="sk-bench",
            TASKRELAY_MODEL_MAX_IN_FLIGHT=str(args.max_in_flight),
        )
        relay = start_relay(env, name="bench-model-relay")
        try:
            rate = asyncio.run(through_system(env, args))
            print(
                f"through the system (worker --processes {args.processes}): {rate:6.1f} items/s, "
                f"peak {stub.peak} requests in flight"
            )
        finally:
            relay.stop()
        stub.peak = 0
        rate = generator_alone(env, args)
        print(f"the generator alone, 2 processes: {rate:6.1f} items/s, peak {stub.peak} in flight")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
