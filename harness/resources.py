"""Isolated resources on the shared servers: one database, vhost and Redis db per test run.

Parallel or repeated runs never see each other's data, and everything is removed at the end.
Making them is on every test run's path, so it is kept short: inside `templated()` (the test
session), a migrated database is a copy of one migrated once by `taskrelay migrate`
(`CREATE DATABASE ... TEMPLATE`, milliseconds instead of a migration), the vhost is made while
the database is, and a vhost is deleted in the background.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import os
import subprocess
import sys
import time
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


async def create_database(name: str, admin: str = PG_ADMIN, template: str | None = None) -> str:
    """CREATE DATABASE through the `admin` URL's server (a copy of `template` if given); the
    new database's URL."""
    conn = await asyncpg.connect(admin)
    try:
        copy = f' TEMPLATE "{template}"' if template else ""
        await conn.execute(f'CREATE DATABASE "{name}"{copy}')
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


_deleting: list[subprocess.Popen[bytes]] = []
"""vhost deletions still running; the process waits for them when it exits."""


def delete_vhost(name: str) -> None:
    """Delete it in the background: nothing waits for a vhost to be gone but the exit."""
    command = ["rabbitmqctl", "-q", "delete_vhost", name]
    _deleting.append(
        subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    )


def _delete_when_made(making: concurrent.futures.Future[str], name: str) -> None:
    making.exception()  # waits for add_vhost to end, whether or not it worked
    delete_vhost(name)


@atexit.register
def _finish_deletions() -> None:
    for deletion in _deleting:
        with contextlib.suppress(subprocess.TimeoutExpired):
            deletion.wait(60)


def claim_redis_db(owner: str, within: float = 600.0) -> int:
    """A Redis database no other test run holds (1-15), claimed in db 0 with an expiry. Runs in
    parallel (pytest-xdist's workers, other checkouts) can hold all 15 at once: then it waits
    for one to be released."""
    client = redis.Redis.from_url(f"{REDIS_BASE}/0")
    deadline = time.monotonic() + within
    try:
        while True:
            for db in range(1, 16):
                if client.set(f"taskrelay-test:db:{db}", owner, nx=True, ex=3 * 3600):
                    redis.Redis.from_url(f"{REDIS_BASE}/{db}").flushdb()
                    return db
            if time.monotonic() > deadline:
                raise RuntimeError("every Redis test database (1-15) is claimed by another run")
            time.sleep(0.5)
    finally:
        client.close()


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
def database(prefix: str, template: str | None = None) -> Iterator[str]:
    """An empty database of its own (its URL), or a copy of `template`; dropped on exit. Safe
    inside a running loop."""
    name = f"{prefix}_{run_id()}"
    url = run_blocking(lambda: create_database(name, template=template))
    try:
        yield url
    finally:
        run_blocking(lambda: drop_database(name))


_template: dict[str, str | None] = {}
"""Inside `templated()`: "prefix", and "name" of the migrated template once one was made."""


@contextlib.contextmanager
def templated(prefix: str) -> Iterator[None]:
    """While open, `migrated_database` copies one database migrated (on first use) by
    `taskrelay migrate`, instead of migrating each one; the template is dropped on exit."""
    _template.update(prefix=prefix, name=None)
    try:
        yield
    finally:
        name = _template.get("name")
        _template.clear()
        if name is not None:
            run_blocking(lambda: drop_database(name))


@contextlib.contextmanager
def migrated_database(prefix: str) -> Iterator[str]:
    """A database migrated to head, of its own (its URL), dropped on exit."""
    if "prefix" not in _template:
        with database(prefix) as url:
            migrate({**os.environ, "DATABASE_URL": url})
            yield url
        return
    if _template["name"] is None:
        name = f"{_template['prefix']}_template_{run_id()}"
        url = run_blocking(lambda: create_database(name))
        _template["name"] = name
        migrate({**os.environ, "DATABASE_URL": url})
    with database(prefix, template=_template["name"]) as url:
        yield url


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
        pool = cleanup.enter_context(concurrent.futures.ThreadPoolExecutor(1))
        making_vhost = pool.submit(create_vhost, vhost)  # rabbitmqctl takes a second or two
        cleanup.callback(_delete_when_made, making_vhost, vhost)
        if postgres is None:
            database_url = cleanup.enter_context(migrated_database(prefix))
        else:
            database_url = postgres.create_database(f"{prefix}_{run}")
        if redis is None:
            redis_db = claim_redis_db(run)
            cleanup.callback(release_redis_db, redis_db, run)
            redis_url = f"{REDIS_BASE}/{redis_db}"
        else:
            redis_db, redis_url = 0, redis.url(0)
        resources = Resources(database_url, making_vhost.result(), redis_url, vhost, redis_db)
        if postgres is not None:
            migrate(resources.env())
        yield resources


def run_blocking(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to completion from sync code, even when an event loop is running."""

    async def run() -> T:
        return await make()

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()
