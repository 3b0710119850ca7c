"""Can this process reach PostgreSQL, RabbitMQ and Redis? One check per dependency.

Every start-up asks here: `taskrelay run` before it starts anything, and the api, relay and
worker before they serve. Each check connects once, within a few seconds, and closes again; one
that fails raises DependencyUnavailable (through `shared.adapters.outages`), which the command line
prints as one line naming the service, its URL without password, and how to start it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aio_pika
import asyncpg
import redis.asyncio as aioredis

from shared.adapters.dependencies import POSTGRES, RABBITMQ, REDIS, redact
from shared.adapters.outages import translated
from shared.config.settings import BrokerSettings, DatabaseSettings, RedisSettings
from shared.errors import DependencyUnavailable
from shared.observability.logging import silenced

PROBE_TIMEOUT = 5.0
"""Seconds a check waits for its service to answer."""
SCHEMA = {"roadmap_tasks": "the schema is missing"}
"""What every process that serves needs migrated: a table, and what its absence means."""
WORKER_SCHEMA = {**SCHEMA, "task_leases": "the worker's tables are missing"}


async def probe_postgres(
    settings: DatabaseSettings,
    *,
    tables: Mapping[str, str] | None = None,
    connect_timeout: float = PROBE_TIMEOUT,
) -> None:
    """The server must answer. Without `tables`, the maintenance database is asked, so the
    configured one may not exist yet (`migrate` creates it); with them, the configured database
    must hold each table, else DependencyUnavailable says why and to run `taskrelay migrate`."""
    url = settings.asyncpg_dsn
    with translated(POSTGRES, url, any_error=True):
        conn = await asyncpg.connect(
            settings.asyncpg_dsn if tables else settings.admin_dsn, timeout=connect_timeout
        )
        try:
            for table, missing in (tables or {}).items():
                if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table):
                    raise DependencyUnavailable(
                        POSTGRES, redact(url), missing, "Run: taskrelay migrate"
                    )
        finally:
            await conn.close(timeout=connect_timeout)


async def probe_rabbitmq(
    settings: BrokerSettings, *, connect_timeout: float = PROBE_TIMEOUT
) -> None:
    """The broker must accept an AMQP connection."""
    with translated(RABBITMQ, settings.url, any_error=True):
        with silenced("aiormq.connection"):  # it logs the failure too; our one line says it all
            connection = await asyncio.wait_for(aio_pika.connect(settings.url), connect_timeout)
        await connection.close()


async def probe_redis(settings: RedisSettings, *, connect_timeout: float = PROBE_TIMEOUT) -> None:
    """Redis must answer a PING."""
    client = aioredis.Redis.from_url(
        settings.url, socket_connect_timeout=connect_timeout, socket_timeout=connect_timeout
    )
    try:
        with translated(REDIS, settings.url, any_error=True):
            await client.ping()
    finally:
        await client.aclose()


async def probe_all(
    database: DatabaseSettings, broker: BrokerSettings, redis: RedisSettings
) -> None:
    """Each dependency in turn; DependencyUnavailable for the first that does not answer."""
    await probe_postgres(database)
    await probe_rabbitmq(broker)
    await probe_redis(redis)
