"""WebSocket fan-out: notification-to-frame latency p50/p99 and memory per socket.

Usage: .venv/bin/python -m bench.ws_fanout [--sockets 1000 5000] [--rate 200] [--seconds 15]
       [--watchers-per-task 2] [--no-compression]

Per socket count, a fresh database and vhost are made (and removed after): tasks are seeded,
a real `taskrelay api` subprocess serves the sockets, and this process opens them (each reads
its snapshot first). It then publishes notifications to the `taskrelay` exchange exactly as
the relay does (routing key `notification.<task_id>`, message_id, x-task-id/x-seq headers),
`--rate` per second on random tasks, and times each frame from the publish call to its
arrival on a socket. Memory per socket = the API's RSS growth from no socket to all sockets
open, divided by their number; it is read again once the notifications have been delivered
(frames, mailboxes and young garbage included), and both figures are printed. Targets (issue
13): <= 30 KB of API memory per socket at 5,000 sockets, p99 < 50 ms at 200 notifications/s.
The open-file limit is raised to its hard limit first (the API inherits it): 5,000 sockets need
more than the usual 1,024.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import random
import resource
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aio_pika
import asyncpg
from websockets.asyncio.client import ClientConnection, connect

from bench.procstat import cpu_seconds, rss_kib
from harness import resources as res
from harness.processes import Process, start_api
from harness.wait import Timeout, wait_until
from shared.domain.messages import EXCHANGE, notification_routing_key
from shared.service.auth import issue_token


async def seed(dsn: str, owner: str, n: int) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(n)]
    conn = await asyncpg.connect(dsn)
    try:
        await conn.copy_records_to_table(
            "roadmap_tasks",
            columns=["task_id", "roadmap_id", "owner_id", "status", "current_step", "seq"],
            records=[(t, "bench", owner, "processing", "content_generation", 0) for t in ids],
        )
    finally:
        await conn.close()
    return ids


class Fanout:
    """The sockets, and when each (task, seq) was published and received."""

    def __init__(self) -> None:
        self.sent: dict[tuple[str, int], float] = {}
        self.latencies: list[float] = []
        self.frames = 0
        self.resyncs = 0

    async def open(self, url: str, compression: bool) -> ClientConnection:
        ws = await connect(url, open_timeout=120, compression="deflate" if compression else None)
        snapshot = json.loads(await ws.recv())
        assert snapshot["type"] == "snapshot", snapshot
        return ws

    async def read(self, ws: ClientConnection) -> None:
        async for message in ws:
            now = time.perf_counter()
            frame = json.loads(message)
            if frame["type"] != "progress":
                self.resyncs += frame["type"] == "snapshot"
                continue
            sent = self.sent.get((frame["task_id"], frame["seq"]))
            if sent is not None:
                self.latencies.append(now - sent)
            self.frames += 1


async def publish(
    amqp_url: str, fanout: Fanout, tasks: list[str], rate: float, seconds: float
) -> int:
    connection = await aio_pika.connect(amqp_url)
    seqs = dict.fromkeys(tasks, 0)
    count = int(rate * seconds)
    try:
        channel = await connection.channel(publisher_confirms=False)
        exchange = await channel.declare_exchange(
            EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True
        )
        start = time.perf_counter()
        for i in range(count):
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))  # pacing
            task = random.choice(tasks)
            seqs[task] += 1
            body = {
                "task_id": task,
                "seq": seqs[task],
                "step": "content_item_completed",
                "status": "processing",
                "message": f"item {seqs[task]} done",
                "data": {"completed_items": seqs[task], "failed_items": 0, "total_items": 10_000},
            }
            message = aio_pika.Message(
                json.dumps(body).encode(),
                message_id=str(uuid.uuid4()),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                headers={"x-task-id": task, "x-seq": seqs[task]},
            )
            fanout.sent[(task, seqs[task])] = time.perf_counter()
            await exchange.publish(
                message, routing_key=notification_routing_key(task), mandatory=False
            )
    finally:
        await connection.close()
    return count


@dataclass
class Result:
    sockets: int
    tasks: int
    published: int
    frames: int
    want: int
    resyncs: int
    latencies: list[float]
    kib_per_socket: float
    kib_per_socket_after_load: float
    api_cpu: float
    client_cpu: float
    opened_per_second: float


@contextlib.asynccontextmanager
async def isolated_api(tasks: int) -> AsyncIterator[tuple[Process, list[str], str]]:
    """A fresh database (with `tasks` tasks) and vhost, and an API on them; removed after."""
    with res.isolated("taskrelay_bench") as resources:
        # One user holds every socket: lift the per-user cap (32 by default) past the bench's count.
        env = resources.env(
            TASKRELAY_LOG_LEVEL="WARNING", TASKRELAY_WS_MAX_SOCKETS_PER_USER=str(1_000_000)
        )
        ids = [str(t) for t in await seed(resources.database_url, "bench", tasks)]
        api = start_api(env, name="bench-ws-api")
        try:
            yield api, ids, resources.amqp_url
        finally:
            api.stop()


async def measure(
    api: Process, tasks: list[str], amqp: str, args: argparse.Namespace, sockets: int
) -> Result:
    base = f"ws://127.0.0.1:{api.port}/ws/tasks"  # type: ignore[attr-defined]
    token = issue_token(res.SECRET, "bench", 3600)
    fanout = Fanout()
    limit = asyncio.Semaphore(200)

    async def open_one(task: str) -> ClientConnection:
        async with limit:
            return await fanout.open(f"{base}/{task}?token={token}", not args.no_compression)

    warm = await open_one(tasks[0])  # the first socket pays one-off start-up costs
    rss_before, opened_at = rss_kib(api.pid) * 1024, time.perf_counter()
    watching = [tasks[i % len(tasks)] for i in range(sockets)]
    conns = await asyncio.gather(*(open_one(task) for task in watching))
    open_seconds = time.perf_counter() - opened_at
    kib = (rss_kib(api.pid) * 1024 - rss_before) / sockets / 1024
    readers = [asyncio.create_task(fanout.read(ws)) for ws in conns]
    cpu, own_cpu = cpu_seconds(api.pid), time.process_time()
    published = await publish(amqp, fanout, tasks, args.rate, args.seconds)
    watchers = collections.Counter(watching)
    want = sum(watchers[task] for task, _ in fanout.sent)  # frames the sockets should get

    async def all_in() -> bool:
        return fanout.frames >= want

    with contextlib.suppress(Timeout):  # a shortfall is printed, not hidden
        await wait_until(all_in, within=30, interval=0.1, what="the last frames")
    api_cpu, client_cpu = cpu_seconds(api.pid) - cpu, time.process_time() - own_cpu
    kib_after = (rss_kib(api.pid) * 1024 - rss_before) / sockets / 1024
    for reader in readers:
        reader.cancel()
    await asyncio.gather(*(ws.close() for ws in [warm, *conns]), return_exceptions=True)
    return Result(
        sockets, len(tasks), published, fanout.frames, want, fanout.resyncs,
        sorted(fanout.latencies), kib, kib_after, api_cpu / args.seconds,
        client_cpu / args.seconds, sockets / open_seconds,
    )  # fmt: skip


def report(r: Result, args: argparse.Namespace) -> None:
    lat = r.latencies
    p50, p99 = statistics.median(lat) * 1000, lat[int(len(lat) * 0.99) - 1] * 1000
    print(
        f"{r.sockets:>5} sockets on {r.tasks} tasks (load average {os.getloadavg()[0]:.1f}): "
        f"{r.published} notifications at {args.rate:.0f}/s -> {r.frames}/{r.want} frames, "
        f"{r.resyncs} resyncs; latency p50 {p50:.1f} ms, p99 {p99:.1f} ms, "
        f"max {lat[-1] * 1000:.1f} ms; API memory {r.kib_per_socket:.1f} KiB "
        f"({r.kib_per_socket * 1.024:.1f} kB)/socket (target <= 30 kB), "
        f"{r.kib_per_socket_after_load * 1.024:.1f} kB after the load; "
        f"CPU (% of a core) API {100 * r.api_cpu:.0f}, this client {100 * r.client_cpu:.0f}; "
        f"{r.opened_per_second:.0f} sockets opened/s"
    )


def raise_open_files(sockets: int) -> None:
    """Lift the soft open-file limit to the hard one, for this process and the API it starts."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < sockets + 1024:
        raise SystemExit(f"{sockets} sockets need an open-file limit above {hard} (ulimit -Hn)")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def main(args: argparse.Namespace) -> None:
    raise_open_files(max(args.sockets))
    for sockets in args.sockets:
        async with isolated_api(max(1, sockets // args.watchers_per_task)) as (api, tasks, amqp):
            report(await measure(api, tasks, amqp, args, sockets), args)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sockets", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--rate", type=float, default=200.0, help="notifications per second")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--watchers-per-task", type=int, default=2)
    parser.add_argument("--no-compression", action="store_true", help="offer no permessage-deflate")
    asyncio.run(main(parser.parse_args()))
