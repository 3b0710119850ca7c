"""Worker per-item cost at a browser's socket against the floor, measured in one run.

Usage: .venv/bin/python -m bench.worker_floor [--items 300] [--growth] [--rounds 2]
       [--profile FILE]

A fresh database, vhost and Redis db hold the run (removed after it).
- Product: a real `taskrelay api`, `relay` and `worker --processes 1`, with the generator
  `harness.generators:instant`, which costs nothing. A task of `--items` items (concepts x
  3 types) is created over HTTP and a WebSocket opened on it at once; the per-item cost is the
  spacing of its `content_item_completed` frames as they reach the socket, from the `--skip`th
  item on (start-up excluded): (last arrival - first arrival) / items between them, counted by
  `data.completed_items`. A 30-item task runs first to warm the processes up.
- Floor: what any implementation of docs/protocol.md must do per item, with the processes stopped,
  on the same database: ONE transaction on one asyncpg connection with prepared statements that
  marks the item completed, bumps the task's `seq` and inserts one notification row into the
  real `outbox` (whose statement trigger NOTIFYs). Per item = wall time / items.
- Ratio = floor / product (issue 13's target: >= 0.5). Each round starts the processes afresh,
  runs the product, stops them and runs the floor; the best of `--rounds` of each is compared.
  CPU per item is printed too (the worker's processes; the floor's client and its PostgreSQL
  backend), as it depends less on what else the machine is doing; and, for the product, that of
  the rest of its path (the API with its gateway, the relay, the PostgreSQL and RabbitMQ
  servers): on 2 CPUs the spacing follows their sum, not the worker's share alone.
`--growth` runs tasks of 300 and 3,000 items and prints the 3,000-item task's per-item cost
over its last 300 items against the 300-item task's (target: within 1.25x): per round (both
tasks on the same processes, a minute apart), and the median over the rounds, which a single
slow stretch of 300 items (a third of a second) moves less than a best-of does.
`--profile FILE` records the worker and its RQ work horses with py-spy during the first round's
product runs (one file per task size: FILE.<items>); read it with
`python -m bench.profile FILE.<items> --within BaseWorker.main_work_horse`.

Baseline on main (526c9f8, 2 CPUs shared with other helpers' test runs): see bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
import zlib
from dataclasses import dataclass

import asyncpg

from bench.frames import TimedSocket
from bench.procstat import ServerCpu, cpu_seconds, wait_childless
from bench.profile import recording
from bench.worker_throughput import rq_pids
from harness import resources as res
from harness.system import TOKEN, System, running
from shared.adapters.postgres import UnitOfWorkFactory
from shared.config.settings import DatabaseSettings, LoggingSettings
from shared.observability.logging import configure_logging
from shared.service.tasks import NewTask, create_task

TYPES = ["tutorial", "resources", "quiz"]
FINISHED = ("completed", "partial_failure", "failed")
TAIL = 300
"""The growth target compares the last TAIL items of a long task with a TAIL-item task."""

MARK = (
    "UPDATE content_items SET status = 'completed', attempts = attempts + 1, content = $4, "
    "updated_at = now() WHERE task_id = $1 AND concept_id = $2 AND content_type = $3"
)
BUMP = "UPDATE roadmap_tasks SET seq = seq + 1, updated_at = now() WHERE task_id = $1 RETURNING seq"
INSERT = (
    "INSERT INTO outbox (message_id, task_id, partition_key, kind, routing_key, payload) "
    "VALUES ($1, $2, $3, 'notification', $4, $5)"
)


@dataclass(frozen=True)
class ItemSpacing:
    items: int
    per_item_ms: float
    """From the `skip`th item to the last."""
    tail_ms: float
    """Over the last TAIL items (the whole measured window when the task is shorter)."""
    startup_ms: float
    """From the create's 201 to the first item frame."""
    worker_cpu_ms: float
    """CPU of the worker's processes (supervisor, RQ workers, work horses) per item."""
    others_cpu_ms: dict[str, float]
    """CPU per item of the rest of the path: the API (its gateway), the relay, and every
    process of the PostgreSQL and RabbitMQ servers."""


def task_body(items: int) -> dict[str, object]:
    """`items` items as concepts x 3 types (as protocol §6's largest task: 1,000 x 3)."""
    types = TYPES if items % len(TYPES) == 0 else TYPES[:1]
    count = items // len(types)
    concepts = [{"concept_id": f"c{i}", "title": f"Concept {i}"} for i in range(count)]
    return {"roadmap_id": "bench", "concepts": concepts, "content_types": types}


async def product(system: System, items: int, skip: int) -> ItemSpacing:
    horses_of = rq_pids(system.worker.output())
    pids = [system.worker.pid, *horses_of]
    wait_childless(horses_of)
    cpu = sum(cpu_seconds(pid, children=True) for pid in pids)
    others = {"API": system.api.pid, "relay": system.relay.pid}
    others_before = {name: cpu_seconds(pid) for name, pid in others.items()}
    servers = {"PostgreSQL": ServerCpu("postgres"), "RabbitMQ": ServerCpu("beam.smp")}
    answer = await system.client.post("/api/v1/tasks", json=task_body(items))
    created = time.perf_counter()
    assert answer.status_code == 201, answer.text
    socket = await TimedSocket.open(system.base_url, answer.json()["task_id"], TOKEN)
    try:
        await socket.wait_for(lambda f: f.get("status") in FINISHED, within=60 + items * 0.05)
    finally:
        await socket.close()
    wait_childless(horses_of)
    cpu = sum(cpu_seconds(pid, children=True) for pid in pids) - cpu
    others_cpu = {name: cpu_seconds(pid) - others_before[name] for name, pid in others.items()}
    others_cpu |= {name: server.used() for name, server in servers.items()}
    done = [
        (f.body["data"]["completed_items"], f.at)
        for f in socket.frames
        if f.body.get("step") == "content_item_completed"
    ]
    return ItemSpacing(
        items,
        _spacing([d for d in done if d[0] >= skip]),
        _spacing([d for d in done if d[0] >= max(skip, items - TAIL)]),
        1000 * (done[0][1] - created),
        1000 * cpu / items,
        {name: 1000 * seconds / items for name, seconds in others_cpu.items()},
    )


def _spacing(done: list[tuple[int, float]]) -> float:
    """Milliseconds per item between the first and last (completed count, arrival) pairs."""
    (first, at_first), (last, at_last) = done[0], done[-1]
    return 1000 * (at_last - at_first) / (last - first)


@dataclass(frozen=True)
class Floor:
    per_item_ms: float
    tail_ms: float
    """Over the last TAIL items."""
    client_cpu_ms: float
    """CPU of this process per item (building the frame, asyncpg)."""
    backend_cpu_ms: float
    """CPU of the connection's PostgreSQL backend per item (read from /proc: a local server)."""


async def floor(database_url: str, items: int) -> Floor:
    """The floor's transactions over a fresh task of `items` items."""
    body = task_body(items)  # the product's task shape, created through the product's service
    new = NewTask(
        "bench",
        [(c["concept_id"], c["title"]) for c in body["concepts"]],  # type: ignore[attr-defined]
        body["content_types"],  # type: ignore[arg-type]
    )
    uow_factory = UnitOfWorkFactory(DatabaseSettings(url=database_url), pool_size=1)
    try:
        async with uow_factory() as uow:
            task_id = (await create_task(uow, "bench", new)).task_id
            await uow.commit()
    finally:
        await uow_factory.close()
    conn = await asyncpg.connect(database_url)
    try:
        keys = await conn.fetch(
            "SELECT concept_id, content_type FROM content_items WHERE task_id = $1 "
            "ORDER BY position",
            task_id,
        )
        mark, bump, insert = [await conn.prepare(sql) for sql in (MARK, BUMP, INSERT)]
        part, routing_key = zlib.crc32(task_id.bytes) % 256, f"notification.{task_id}"
        backend = conn.get_server_pid()
        cpu = (time.process_time(), cpu_seconds(backend))
        stamps = [time.perf_counter()]
        for n, (concept_id, content_type) in enumerate(keys, 1):
            async with conn.transaction():
                await mark.fetchval(task_id, concept_id, content_type, json.dumps(concept_id))
                seq = await bump.fetchval(task_id)
                frame = {
                    "task_id": str(task_id),
                    "seq": seq,
                    "step": "content_item_completed",
                    "status": "processing",
                    "message": f"Generated {content_type} for {concept_id} ({n}/{len(keys)})",
                    "data": {
                        "item": {"concept_id": concept_id, "content_type": content_type},
                        "completed_items": n,
                        "failed_items": 0,
                        "total_items": len(keys),
                    },
                }
                await insert.fetchval(uuid.uuid4(), task_id, part, routing_key, json.dumps(frame))
            stamps.append(time.perf_counter())
        client_cpu, backend_cpu = time.process_time() - cpu[0], cpu_seconds(backend) - cpu[1]
    finally:
        await conn.close()
    tail = min(TAIL, items)
    return Floor(
        1000 * (stamps[-1] - stamps[0]) / items,
        1000 * (stamps[-1] - stamps[-1 - tail]) / tail,
        1000 * client_cpu / items,
        1000 * backend_cpu / items,
    )


async def run(args: argparse.Namespace, sizes: list[int]) -> None:
    best_product: dict[int, ItemSpacing] = {}
    best_floor: dict[int, Floor] = {}
    growths: list[tuple[float, float]] = []
    with res.isolated("taskrelay_bench") as resources:
        env = resources.env(
            TASKRELAY_CONTENT_GENERATOR="harness.generators:instant",
            TASKRELAY_API_RATE_LIMIT_PER_SECOND="0",
        )
        for round_no in range(1, args.rounds + 1):
            spacings = []
            async with running(env, processes=1) as system:
                await product(system, 30, skip=5)  # warm-up: imports, connections, first fork
                for items in sizes:
                    spied = f"{args.profile}.{items}" if args.profile and round_no == 1 else None
                    with recording(system.worker.pid, spied, subprocesses=True):
                        spacings.append(await product(system, items, args.skip))
            floors = [await floor(resources.database_url, items) for items in sizes]
            print(f"round {round_no} (load average {os.getloadavg()[0]:.2f}):")
            report(spacings, floors)
            if len(spacings) == 2:
                growths.append(growth(*spacings))
            for s, f in zip(spacings, floors, strict=True):
                if s.items not in best_product or s.per_item_ms < best_product[s.items].per_item_ms:
                    best_product[s.items] = s
                if s.items not in best_floor or f.per_item_ms < best_floor[s.items].per_item_ms:
                    best_floor[s.items] = f
    print(f"best of {args.rounds} on {os.cpu_count()} CPUs:")
    report([best_product[n] for n in sizes], [best_floor[n] for n in sizes])
    if growths:
        at_socket = sorted(g for g, _ in growths)
        cpu = sorted(c for _, c in growths)
        print(
            f"growth, each round's two tasks compared with each other (same processes, same "
            f"minute): at the socket {', '.join(f'{g:.2f}x' for g in at_socket)}, median "
            f"{statistics.median(at_socket):.2f}x (target <= 1.25x); worker CPU per item "
            f"{', '.join(f'{c:.2f}x' for c in cpu)}, median {statistics.median(cpu):.2f}x"
        )


def growth(short: ItemSpacing, long: ItemSpacing) -> tuple[float, float]:
    """(the long task's last TAIL items against the short task, at the socket; the worker's
    CPU per item of the long task against the short one's)."""
    return long.tail_ms / short.per_item_ms, long.worker_cpu_ms / short.worker_cpu_ms


def report(spacings: list[ItemSpacing], floors: list[Floor]) -> None:
    for s, f in zip(spacings, floors, strict=True):
        tail = min(TAIL, s.items)
        print(
            f"  {s.items:>5} items: product {s.per_item_ms:.3f} ms/item at the socket "
            f"(last {tail}: {s.tail_ms:.3f}; start-up {s.startup_ms:.0f} ms; "
            f"worker CPU {s.worker_cpu_ms:.3f} ms/item); floor {f.per_item_ms:.3f} ms/item "
            f"(last {tail}: {f.tail_ms:.3f}; CPU client {f.client_cpu_ms:.3f} + "
            f"PostgreSQL {f.backend_cpu_ms:.3f} ms/item); ratio floor/product "
            f"{f.per_item_ms / s.per_item_ms:.2f} (target >= 0.5)"
        )
        rest = ", ".join(f"{name} {ms:.3f}" for name, ms in s.others_cpu_ms.items())
        print(f"         the product's CPU per item beside the worker: {rest} ms")
    if len(spacings) == 2:
        short, long = spacings
        print(
            f"  growth: last {TAIL} of {long.items} items {long.tail_ms:.3f} ms/item vs "
            f"{short.items}-item task {short.per_item_ms:.3f} ms/item: "
            f"{long.tail_ms / short.per_item_ms:.2f}x (target <= 1.25x)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--growth", action="store_true", help=f"tasks of {TAIL} and 3000 items")
    parser.add_argument("--skip", type=int, default=10, help="items left out as start-up")
    parser.add_argument("--rounds", type=int, default=2, help="best of N (a shared machine)")
    parser.add_argument("--profile", metavar="FILE", help="py-spy the worker into FILE.<items>")
    args = parser.parse_args()
    configure_logging("bench", LoggingSettings(level="WARNING"))
    asyncio.run(run(args, [TAIL, 3000] if args.growth else [args.items]))


if __name__ == "__main__":
    main()
