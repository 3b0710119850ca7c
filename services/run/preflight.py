"""Before `taskrelay run` starts anything: can PostgreSQL, RabbitMQ and Redis be reached?

Each failure names the service, the URL it tried (without password) and how to start it, so a
newcomer's first error is also its fix.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import asyncpg
import redis.asyncio as redis

from shared.dependencies import POSTGRES, RABBITMQ, REDIS, unavailable
from shared.logging import silenced
from shared.settings import Settings

TIMEOUT = 5.0


async def check_postgres(settings: Settings) -> None:
    """The server must answer; the database itself may not exist yet (migrate creates it)."""
    dsn = settings.database.asyncpg_dsn
    admin = urlunsplit(urlsplit(dsn)._replace(path="/postgres"))
    try:
        conn = await asyncpg.connect(admin, timeout=TIMEOUT)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise unavailable(POSTGRES, dsn, exc) from exc
    await conn.close()


async def check_rabbitmq(settings: Settings) -> None:
    try:
        with silenced("aiormq.connection"):  # the one line we raise says it all
            connection = await asyncio.wait_for(aio_pika.connect(settings.broker.url), TIMEOUT)
    except (OSError, TimeoutError, aio_pika.exceptions.AMQPError) as exc:
        raise unavailable(RABBITMQ, settings.broker.url, exc) from exc
    await connection.close()


async def check_redis(settings: Settings) -> None:
    client = redis.Redis.from_url(settings.redis.url, socket_connect_timeout=TIMEOUT)
    try:
        await client.ping()
    except (OSError, redis.RedisError) as exc:
        raise unavailable(REDIS, settings.redis.url, exc) from exc
    finally:
        await client.aclose()


async def check_all(settings: Settings) -> None:
    """Raise DependencyUnavailable for the first service that does not answer."""
    for check in (check_postgres, check_rabbitmq, check_redis):
        await check(settings)
