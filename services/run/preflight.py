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

from shared.db.migrate import START_HINT as POSTGRES_HINT
from shared.errors import DependencyUnavailable
from shared.settings import Settings

RABBITMQ_HINT = "Start it with: rabbitmq-server -detached"
REDIS_HINT = (
    'Start it with: redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save ""'
)
TIMEOUT = 5.0


def without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return urlunsplit(parts._replace(netloc=parts.netloc.replace(parts.password, "***", 1)))
    return url


async def check_postgres(settings: Settings) -> None:
    """The server must answer; the database itself may not exist yet (migrate creates it)."""
    dsn = settings.database.asyncpg_dsn
    admin = urlunsplit(urlsplit(dsn)._replace(path="/postgres"))
    try:
        conn = await asyncpg.connect(admin, timeout=TIMEOUT)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise _unavailable("PostgreSQL", dsn, exc, POSTGRES_HINT) from exc
    await conn.close()


async def check_rabbitmq(settings: Settings) -> None:
    try:
        connection = await asyncio.wait_for(aio_pika.connect(settings.broker.url), TIMEOUT)
    except (OSError, TimeoutError, aio_pika.exceptions.AMQPError) as exc:
        raise _unavailable("RabbitMQ", settings.broker.url, exc, RABBITMQ_HINT) from exc
    await connection.close()


async def check_redis(settings: Settings) -> None:
    client = redis.Redis.from_url(settings.redis.url, socket_connect_timeout=TIMEOUT)
    try:
        await client.ping()
    except (OSError, redis.RedisError) as exc:
        raise _unavailable("Redis", settings.redis.url, exc, REDIS_HINT) from exc
    finally:
        await client.aclose()


async def check_all(settings: Settings) -> None:
    """Raise DependencyUnavailable for the first service that does not answer."""
    for check in (check_postgres, check_rabbitmq, check_redis):
        await check(settings)


def _unavailable(service: str, url: str, exc: BaseException, hint: str) -> DependencyUnavailable:
    reason = str(exc) or type(exc).__name__
    return DependencyUnavailable(service, without_password(url), reason, hint)
