"""Commit to consumer receipt through a real relay: p50 and p99 over single-row commits.

Usage: .venv/bin/python -m bench.relay_latency [--commits 1000] [--rate 100]

A fresh database and vhost are made for the run and removed after it. A `taskrelay relay`
subprocess publishes; this process commits one notification per transaction through the real
unit of work and outbox writer, at `--rate` per second, and consumes them from its own queue
bound to the exchange. Latency = receipt time - the moment `commit()` returned. It also prints
the relay's CPU per row over the run: its own process, and its PostgreSQL backends (found by
`application_name`), which is where the round trips it makes per row show.
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
import asyncpg
from aio_pika.abc import AbstractIncomingMessage

from bench.procstat import cpu_seconds
from harness import resources as res
from harness.relay import health, start_relay
from harness.wait import wait_until_sync
from shared.adapters.postgres import UnitOfWorkFactory
from shared.adapters.rabbitmq.topology import declare_topology
from shared.config.settings import Settings
from shared.domain import Notification, Status

RELAY_BACKENDS = (
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
    "AND application_name LIKE 'taskrelay-relay%'"
)


class RelayCpu:
    """CPU seconds of the relay process and of its PostgreSQL backends, between two readings."""

    def __init__(self, relay_pid: int, backend_pids: list[int]) -> None:
        self._pids = [relay_pid, *backend_pids]
        self._start = self._read()

    def _read(self) -> list[float]:
        return [cpu_seconds(pid) for pid in self._pids]

    def used(self) -> tuple[float, float]:
        """(relay process, its backends) seconds since this was made."""
        spent = [after - before for before, after in zip(self._start, self._read(), strict=True)]
        return spent[0], sum(spent[1:])


async def measure(
    env: dict[str, str], commits: int, rate: float, relay_pid: int
) -> tuple[list[float], tuple[float, float]]:
    settings = Settings.from_env(env)
    committed: dict[str, float] = {}
    received: dict[str, float] = {}
    done = asyncio.Event()

    async def on_message(message: AbstractIncomingMessage) -> None:
        received.setdefault(str(message.message_id), time.perf_counter())
        if len(received) >= commits:
            done.set()

    connection = await aio_pika.connect(settings.broker.url)
    uow_factory = UnitOfWorkFactory(settings.database, pool_size=2)
    try:
        channel = await connection.channel()
        topology = await declare_topology(channel)
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(topology.exchange, "notification.#")
        await queue.consume(on_message, no_ack=True)
        conn = await asyncpg.connect(settings.database.asyncpg_dsn)
        try:
            backends = [int(r[0]) for r in await conn.fetch(RELAY_BACKENDS)]
        finally:
            await conn.close()
        cpu = RelayCpu(relay_pid, backends)
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
        used = cpu.used()
    finally:
        await connection.close()
        await uow_factory.close()
    return [received[m] - t for m, t in committed.items()], used


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
            latencies, (relay_cpu, backend_cpu) = asyncio.run(
                measure(env, args.commits, args.rate, relay.pid)
            )
            latencies.sort()
        finally:
            relay.stop()
    ms = [seconds * 1000 for seconds in latencies]
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(
        f"commit -> consumer receipt over {len(ms)} single-row commits at {args.rate:.0f}/s: "
        f"p50 {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms, max {ms[-1]:.1f} ms"
    )
    print(
        f"relay CPU per row: process {relay_cpu / len(ms) * 1000:.3f} ms + its PostgreSQL "
        f"backends {backend_cpu / len(ms) * 1000:.3f} ms"
    )


if __name__ == "__main__":
    main()
