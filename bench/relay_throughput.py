"""Relay drain rate against a raw aio-pika confirmed publish of the same messages, same run.

Target: ratio >= 0.8. Also prints the relay's RSS while it drains (it should stay flat).
Usage: .venv/bin/python -m bench.relay_throughput [--rows 100000] [--rounds 3] [--no-baseline]
Use `--rows 1000000 --rounds 1 --no-baseline` for the memory run, and
`--relays 1 2 --partitions 4 --no-baseline` for the scale-out figure: the same backlog drained
by 1 relay owning all 4 partitions, then by 2 relays owning 2 each
(`TASKRELAY_RELAY_MAX_PARTITIONS`), the rate of each and their ratio. A relay claims no row of
a task that has a row in its batch in flight: when a relay's share of the backlog spans no more
tasks than `--batch`, its next claim finds nothing and it claims again as soon as that batch is
marked (one batch at a time instead of two overlapping); `--tasks` sets how many tasks the
backlog spans.

A fresh database and vhost are made for the run and removed after it. The backlog is written
first (notification rows of 1,000 tasks); the baseline reads the same rows and publishes them
with the same properties on one confirm channel, `--batch` at a time concurrently; then a real
`taskrelay relay` drains them. The relay's rate comes from the `published_at` stamps it wrote.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import uuid
import zlib
from collections.abc import Awaitable
from typing import cast

import aio_pika
import aiormq
import asyncpg

from bench.procstat import rss_kib
from harness import resources as res
from harness.processes import Process, stop_all
from harness.relay import health, start_relay
from harness.wait import wait_until_sync

SINK = "bench.sink"
TASKS = 1000


async def write_backlog(dsn: str, rows: int, task_count: int = TASKS) -> None:
    """`rows` notification rows, spread over `task_count` tasks, `seq` increasing per task."""
    tasks = [uuid.uuid4() for _ in range(task_count)]
    conn = await asyncpg.connect(dsn)
    try:
        step = 50_000
        for start in range(0, rows, step):
            records = []
            for n in range(start, min(rows, start + step)):
                task = tasks[n % task_count]
                body = {
                    "task_id": str(task),
                    "seq": n // task_count + 1,
                    "step": "content_item_completed",
                    "status": "processing",
                    "message": f"Generated tutorial for Concept {n} ({n // task_count + 1}/300)",
                    "data": {
                        "completed_items": n // task_count + 1,
                        "failed_items": 0,
                        "total_items": 300,
                    },
                }
                records.append(
                    (
                        uuid.uuid4(),
                        task,
                        zlib.crc32(task.bytes) % 256,
                        "notification",
                        f"notification.{task}",
                        json.dumps(body),
                    )
                )
            await conn.copy_records_to_table(
                "outbox",
                records=records,
                columns=[
                    "message_id",
                    "task_id",
                    "partition_key",
                    "kind",
                    "routing_key",
                    "payload",
                ],
            )
    finally:
        await conn.close()


async def prepare_sink(amqp_url: str) -> None:
    """A durable queue bound to everything, so every message is routed and confirmed."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        exchange = await channel.declare_exchange(
            "taskrelay", aio_pika.ExchangeType.TOPIC, durable=True
        )
        queue = await channel.declare_queue(SINK, durable=True)
        await queue.bind(exchange, "notification.#")
        await queue.purge()


async def raw_publish(dsn: str, amqp_url: str, batch: int, *, underlay: bool) -> float:
    """Messages per second of a bare confirmed publish of the backlog's rows.

    `underlay=False`: aio-pika's `Exchange.publish`. `underlay=True`: the same aiormq call
    the relay makes (`basic_publish(..., wait=False)`), so the ratio is the relay's overhead.
    """
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT message_id, task_id, routing_key, payload::text AS payload, "
            "(payload->>'seq')::bigint AS seq FROM outbox ORDER BY id"
        )
    finally:
        await conn.close()
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange("taskrelay")
        raw = cast(aiormq.Channel, await channel.get_underlay_channel())

        def publish(r: asyncpg.Record) -> Awaitable[object]:
            message = aio_pika.Message(
                r["payload"].encode(),
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                message_id=str(r["message_id"]),
                headers={"x-task-id": str(r["task_id"]), "x-seq": r["seq"]},
            )
            if not underlay:
                return exchange.publish(message, r["routing_key"], mandatory=True, timeout=30)
            return raw.basic_publish(
                message.body,
                exchange="taskrelay",
                routing_key=r["routing_key"],
                properties=message.properties,
                mandatory=True,
                timeout=30,
                wait=False,
            )

        started = time.perf_counter()
        for i in range(0, len(rows), batch):
            await asyncio.gather(*(publish(r) for r in rows[i : i + batch]))
        elapsed = time.perf_counter() - started
        queue = await channel.get_queue(SINK)
        await queue.purge()
    return len(rows) / elapsed


def drain_with_relay(env: dict[str, str], rows: int, count: int = 1) -> list[tuple[int, int]]:
    """Start `count` relays, wait for the backlog to reach 0; (remaining backlog, RSS KiB of
    the first relay) samples."""
    relays: list[Process] = []
    samples: list[tuple[int, int]] = []
    try:
        relays.extend(start_relay(env, f"bench-relay-{n}") for n in range(count))

        def drained() -> bool:
            documents = [health(relay.port) for relay in relays]  # type: ignore[attr-defined]
            if any(document is None for document in documents):
                return False
            backlog = int(documents[0]["backlog"])  # type: ignore[index]
            samples.append((backlog, rss_kib(relays[0].pid)))
            published = sum(int(d["published_total"]) for d in documents)  # type: ignore[index]
            return backlog == 0 and published >= rows

        wait_until_sync(drained, within=3600, interval=0.5, what="the relays to drain")
        samples.append((0, rss_kib(relays[0].pid, "VmHWM")))
    finally:
        stop_all(relays)
    return samples


async def relay_rate(dsn: str) -> tuple[float, int]:
    conn = await asyncpg.connect(dsn)
    try:
        first, last, count, first_batch = await conn.fetchrow(
            "SELECT min(published_at), max(published_at), count(*), "
            "count(*) FILTER (WHERE published_at = (SELECT min(published_at) FROM outbox)) "
            "FROM outbox WHERE published_at IS NOT NULL"
        )
    finally:
        await conn.close()
    return (count - first_batch) / (last - first).total_seconds(), count


async def reset(dsn: str, amqp_url: str) -> None:
    """Make the drained backlog pending again, and empty the sink, for the next round."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("UPDATE outbox SET published_at = NULL")
        await conn.execute("VACUUM ANALYZE outbox")
    finally:
        await conn.close()
    await prepare_sink(amqp_url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=500, help="relay batch = baseline window")
    parser.add_argument("--rounds", type=int, default=3, help="best of N (a shared machine)")
    parser.add_argument("--no-baseline", action="store_true", help="only drain with the relay")
    parser.add_argument("--relays", type=int, nargs="+", default=[1], help="relay counts to run")
    parser.add_argument("--partitions", type=int, default=1, help="TASKRELAY_RELAY_PARTITIONS")
    parser.add_argument("--tasks", type=int, default=TASKS, help="tasks the backlog spans")
    args = parser.parse_args()

    with res.isolated("taskrelay_bench") as resources:
        drain(resources, args)


def drain(resources: res.Resources, args: argparse.Namespace) -> None:
    dsn, amqp_url = resources.database_url, resources.amqp_url

    def env(relays: int) -> dict[str, str]:
        share = 0 if relays == 1 else -(-args.partitions // relays)  # each takes its share
        return resources.env(
            TASKRELAY_RELAY_BATCH_SIZE=str(args.batch),
            TASKRELAY_RELAY_CLEANUP_INTERVAL_SECONDS="36000",
            TASKRELAY_RELAY_PARTITIONS=str(args.partitions),
            TASKRELAY_RELAY_MAX_PARTITIONS=str(share),
        )

    asyncio.run(prepare_sink(amqp_url))
    started = time.perf_counter()
    asyncio.run(write_backlog(dsn, args.rows, args.tasks))
    print(f"backlog: {args.rows} rows written in {time.perf_counter() - started:.1f} s")
    best: dict[str, float] = {}
    drained = False
    for round_ in range(1, args.rounds + 1):
        rates: dict[str, float] = {}
        if not args.no_baseline:
            for name, underlay in (("Exchange.publish", False), ("basic_publish", True)):
                rates[name] = asyncio.run(raw_publish(dsn, amqp_url, args.batch, underlay=underlay))
        for relays in args.relays:
            if drained:
                asyncio.run(reset(dsn, amqp_url))
            samples = drain_with_relay(env(relays), args.rows, relays)
            drained = True
            rates[_relays(relays)], count = asyncio.run(relay_rate(dsn))
        print(f"round {round_}: " + ", ".join(f"{k} {v:,.0f} msg/s" for k, v in rates.items()))
        for name, rate in rates.items():
            best[name] = max(best.get(name, 0.0), rate)
    for relays in args.relays:
        print(f"{_relays(relays)}: {count} rows drained, best {best[_relays(relays)]:,.0f} msg/s")
    if len(args.relays) > 1:
        one, most = best[_relays(args.relays[0])], best[_relays(args.relays[-1])]
        print(
            f"scale-out over {args.partitions} partitions: {_relays(args.relays[-1])} / "
            f"{_relays(args.relays[0])} = {most / one:.2f}"
        )
    for name, raw in best.items():
        if name in ("Exchange.publish", "basic_publish") and "relay" in best:
            print(
                f"raw aio-pika confirmed publish ({name}), best: {raw:,.0f} msg/s; "
                f"ratio relay / raw: {best['relay'] / raw:.2f} (target >= 0.8)"
            )
    report_rss(samples)


def _relays(count: int) -> str:
    return "relay" if count == 1 else f"{count} relays"


def report_rss(samples: list[tuple[int, int]]) -> None:
    *during, (_, peak) = samples
    marks = [during[int(i * (len(during) - 1) / 4)] for i in range(5)] if during else []
    shown = ", ".join(f"{rss / 1024:.0f} MiB (backlog {left})" for left, rss in marks)
    print(f"relay RSS while draining: {shown}; peak (VmHWM) {peak / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
