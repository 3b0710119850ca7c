"""Isolated resources on the shared servers: one database, vhost and Redis db per test run.

Parallel or repeated runs never see each other's data, and everything is removed at the end.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import quote

import asyncpg
import redis

if TYPE_CHECKING:
    from harness.servers import PrivatePostgres, PrivateRedis

PG_ADMIN = os.environ.get("TASKRELAY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_BASE = os.environ.get("TASKRELAY_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672")
REDIS_BASE = os.environ.get("TASKRELAY_TEST_REDIS", "redis://127.0.0.1:6379")
SECRET = "test-secret-" + "x" * 40


T = TypeVar("T")


def run_id() -> str:
    return uuid.uuid4().hex[:10]


@dataclass(frozen=True)
class Resources:
    database_url: str
    amqp_url: str
    redis_url: str
    vhost: str
    redis_db: int

    def env(self, **extra: str) -> dict[str, str]:
        """The environment a taskrelay process of this test run needs."""
        env = dict(os.environ)
        env.update(
            DATABASE_URL=self.database_url,
            AMQP_URL=self.amqp_url,
            REDIS_URL=self.redis_url,
            TASKRELAY_SECRET=SECRET,
            TASKRELAY_LOG_FORMAT="json",
            # Tests open sockets for one user far faster than a browser does (20 in a second);
            # the connect budget's own tests (test_hostile_gateway.py) set it low.
            TASKRELAY_WS_CONNECTS_PER_SECOND="1000",
        )
        env.update(extra)
        return env


async def create_database(name: str, admin: str = PG_ADMIN) -> str:
    """CREATE DATABASE through the `admin` URL's server; the new database's URL."""
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return admin.rsplit("/", 1)[0] + f"/{name}"


async def drop_database(name: str, admin: str = PG_ADMIN) -> None:
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def create_vhost(name: str) -> str:
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", name], check=True, capture_output=True)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
        check=True,
        capture_output=True,
    )
    return f"{AMQP_BASE}/{quote(name, safe='')}"


def delete_vhost(name: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], check=False, capture_output=True)


def claim_redis_db(owner: str) -> int:
    """A Redis database no other test run holds (1-15), claimed in db 0 with an expiry."""
    client = redis.Redis.from_url(f"{REDIS_BASE}/0")
    try:
        for db in range(1, 16):
            if client.set(f"taskrelay-test:db:{db}", owner, nx=True, ex=3 * 3600):
                redis.Redis.from_url(f"{REDIS_BASE}/{db}").flushdb()
                return db
    finally:
        client.close()
    raise RuntimeError("every Redis test database (1-15) is claimed by another run")


def release_redis_db(db: int, owner: str) -> None:
    client = redis.Redis.from_url(f"{REDIS_BASE}/0")
    try:
        redis.Redis.from_url(f"{REDIS_BASE}/{db}").flushdb()
        if client.get(f"taskrelay-test:db:{db}") == owner.encode():
            client.delete(f"taskrelay-test:db:{db}")
    finally:
        client.close()


def migrate(env: dict[str, str]) -> None:
    """Run `taskrelay migrate` as an operator would; its error output if it fails."""
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "migrate"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"taskrelay migrate failed:\n{done.stdout}{done.stderr}")


@contextlib.contextmanager
def database(prefix: str) -> Iterator[str]:
    """An empty database of its own (its URL), dropped on exit. Safe inside a running loop."""
    name = f"{prefix}_{run_id()}"
    url = run_blocking(lambda: create_database(name))
    try:
        yield url
    finally:
        run_blocking(lambda: drop_database(name))


@contextlib.contextmanager
def isolated(prefix: str) -> Iterator[Resources]:
    """A migrated database, a RabbitMQ vhost and a Redis db of their own; removed on exit."""
    with isolated_on(prefix) as resources:
        yield resources


@contextlib.contextmanager
def isolated_on(
    prefix: str, postgres: PrivatePostgres | None = None, redis: PrivateRedis | None = None
) -> Iterator[Resources]:
    """Like `isolated`, with the database on a private PostgreSQL and/or the private Redis.

    The vhost is always a fresh one on the shared broker. A database on a private server is not
    dropped on exit (the server may be down by then): destroying the server removes it.
    """
    run = run_id()
    vhost = f"{prefix.replace('_', '-')}-{run}"
    with contextlib.ExitStack() as cleanup:
        if postgres is None:
            database_url = cleanup.enter_context(database(prefix))
        else:
            database_url = postgres.create_database(f"{prefix}_{run}")
        amqp_url = create_vhost(vhost)
        cleanup.callback(delete_vhost, vhost)
        if redis is None:
            redis_db = claim_redis_db(run)
            cleanup.callback(release_redis_db, redis_db, run)
            redis_url = f"{REDIS_BASE}/{redis_db}"
        else:
            redis_db, redis_url = 0, redis.url(0)
        resources = Resources(database_url, amqp_url, redis_url, vhost, redis_db)
        migrate(resources.env())
        yield resources


def run_blocking(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync code, even when an event loop is running."""

    async def run() -> T:
        return await make()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()
