"""`bootstrap()`: the composition root of `taskrelay worker`, and its run loop.

The supervisor checks its dependencies once (one clear line and exit 1 when PostgreSQL,
RabbitMQ or Redis is unreachable, or the generator cannot be had: a bad name, or the `openai`
generator without TASKRELAY_MODEL or with a bad prompts file), then runs until SIGTERM
or SIGINT: the job consumer, the reconciler (no task stays without live work), the pool of RQ
worker processes, and `/metrics`, `/livez`, `/readyz` on --metrics-port. Shutdown order: stop
taking messages, let the RQ workers hand their running jobs back at the next item boundary,
then close connections; all within the configured grace.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from dataclasses import dataclass

import aio_pika
import redis
from aio_pika.abc import AbstractRobustConnection

from services.worker.consumer import JobConsumer
from services.worker.enqueue import JobQueue
from services.worker.metrics import DEFAULT_METRICS_PORT, WorkerMetrics, start_probe_server
from services.worker.pool import RqProcessPool
from services.worker.reconciler import run_reconciler
from shared.adapters.openai import select_generator
from shared.adapters.postgres import UnitOfWorkFactory
from shared.adapters.probes import WORKER_SCHEMA, Probes
from shared.adapters.unavailable import POSTGRES, RABBITMQ, REDIS, translated
from shared.config.settings import Settings
from shared.observability.logging import get_logger, silenced

log = get_logger(__name__)

CONNECT_TIMEOUT_SECONDS = 10.0
"""The broker connection's first connect."""
REDIS_CONNECT_SECONDS = 5.0
"""Each connect of the worker's Redis client (the reconciler's, the job queue's)."""


@dataclass
class Worker:
    """Everything one `taskrelay worker` process runs, wired from the settings."""

    settings: Settings
    processes: int
    redis: redis.Redis
    broker: AbstractRobustConnection
    uow_factory: UnitOfWorkFactory
    metrics_port: int = DEFAULT_METRICS_PORT

    async def run(self) -> int:
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping.set)
        metrics = WorkerMetrics()
        pool = RqProcessPool(self.processes, env=metrics.child_environment())
        metrics.rq_processes.set_function(lambda: pool.alive)
        await pool.start()
        supervisor = asyncio.create_task(pool.supervise())
        consumer = JobConsumer(
            self.uow_factory,
            JobQueue(self.redis, self.settings),
            prefetch=self.settings.worker.prefetch,
            settled=lambda outcome: metrics.job_messages.labels(outcome).inc(),
        )
        await consumer.start(await self.broker.channel())
        reconciler = asyncio.create_task(
            run_reconciler(
                self.uow_factory,
                self.redis,
                self.settings.worker,
                broker_connected=self.broker.connected.is_set,
                recovered_one=lambda action: metrics.recovered.labels(action).inc(),
            )
        )

        def not_ready() -> str | None:
            if not self.broker.connected.is_set():
                return "RabbitMQ is not connected"
            return None if pool.alive else "no RQ worker process is running"

        probes = await start_probe_server(
            metrics, self.settings.worker.metrics_host, self.metrics_port, not_ready
        )
        log.info("worker_started", processes=self.processes, rq_pids=pool.pids)
        await stopping.wait()
        log.info("worker_stopping")
        grace = self.settings.worker.shutdown_grace_seconds
        await consumer.stop(drain_seconds=3.0)
        await pool.stop(grace)
        for task in (supervisor, reconciler):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if probes is not None:
            await probes.stop()
        metrics.remove()
        await self.close()
        log.info("worker_stopped")
        return 0

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.broker.close()
        await self.uow_factory.close()
        self.redis.close()


async def bootstrap(
    settings: Settings, processes: int, metrics_port: int = DEFAULT_METRICS_PORT
) -> Worker:
    """Check every dependency, then build the worker; DependencyUnavailable says which failed."""
    select_generator(settings)  # fail now (a bad name, no model, a bad prompts file), not per job
    await Probes(settings, (POSTGRES, REDIS), schema=WORKER_SCHEMA).start_up()
    broker = await _connect_broker(settings)
    client = redis.Redis.from_url(settings.redis.url, socket_connect_timeout=REDIS_CONNECT_SECONDS)
    uow_factory = UnitOfWorkFactory(settings.database, pool_size=5)
    return Worker(settings, processes, client, broker, uow_factory, metrics_port)


async def run_worker(
    settings: Settings, processes: int, metrics_port: int = DEFAULT_METRICS_PORT
) -> int:
    worker = await bootstrap(settings, processes, metrics_port)
    return await worker.run()


async def _connect_broker(settings: Settings) -> AbstractRobustConnection:
    """The worker's own robust connection, checked as it is made (one line if it cannot)."""
    url = settings.broker.url
    with translated(RABBITMQ, url, any_error=True), silenced("aiormq.connection"):
        return await asyncio.wait_for(aio_pika.connect_robust(url), CONNECT_TIMEOUT_SECONDS)
