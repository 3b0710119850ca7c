"""Commit to consumer receipt through a real relay: p50 and p99 over single-row commits.

Usage: .venv/bin/python -m bench.relay_latency [--commits 1000] [--rate 100]

A fresh database and vhost are made for the run and removed after it. A `taskrelay relay`
subprocess publishes; this process commits one notification per transaction through the real
unit of work and outbox writer, at `--rate` per second, and consumes them from its own queue
bound to the exchange. Latency = receipt time - the moment `commit()` returned.
This is the relay's leg only; `bench.click_to_frame` times the whole path a user sees, from the
retry request through the API, relay and gateway to the frame on a WebSocket.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from shared.db import UnitOfWorkFactory, create_engine
from shared.domain import Notification, Status
from shared.settings import Settings
from shared.topology import declare_topology
from tests.support import resources as res
from tests.support.relay import health, start_relay
from tests.support.wait import wait_until_sync


async def measure(env: dict[str, str], commits: int, rate: float) -> list[float]:
    settings = Settings.from_env(env)
    committed: dict[str, float] = {}
    received: dict[str, float] = {}
    done = asyncio.Event()

    async def on_message(message: AbstractIncomingMessage) -> None:
        received.setdefault(str(message.message_id), time.perf_counter())
        if len(received) >= commits:
            done.set()

    connection = await aio_pika.connect(settings.broker.url)
    engine = create_engine(settings.database, pool_size=2)
    try:
        channel = await connection.channel()
        topology = await declare_topology(channel)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(topology.exchange, "notification.#")
        await queue.consume(on_message, no_ack=True)
        uow_factory = UnitOfWorkFactory(engine)
        task_id = uuid.uuid4()
        started = time.perf_counter()
        for seq in range(1, commits + 1):
            await asyncio.sleep(max(0.0, started + seq / rate - time.perf_counter()))
            note = Notification(task_id, seq, "bench", Status.PROCESSING, "latency", {})
            async with uow_factory() as uow:
                [message_id] = await uow.outbox.add(note)
                await uow.commit()
            committed[str(message_id)] = time.perf_counter()
        await asyncio.wait_for(done.wait(), 60)
    finally:
        await connection.close()
        await engine.dispose()
    return [received[m] - t for m, t in committed.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0, help="commits per second")
    args = parser.parse_args()

    with res.isolated("taskrelay_bench") as resources:
        env = resources.env()
        relay = start_relay(env, "bench-latency")
        try:
            port = relay.port  # type: ignore[attr-defined]
            wait_until_sync(lambda: (health(port) or {}).get("status") == "ok", what="relay ok")
            latencies = sorted(asyncio.run(measure(env, args.commits, args.rate)))
        finally:
            relay.stop()
    ms = [seconds * 1000 for seconds in latencies]
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(
        f"commit -> consumer receipt over {len(ms)} single-row commits at {args.rate:.0f}/s: "
        f"p50 {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms, max {ms[-1]:.1f} ms"
    )


if __name__ == "__main__":
    main()
