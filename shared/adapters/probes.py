"""Can this process reach PostgreSQL, RabbitMQ and Redis? One `Probes` object per process.

Each composition root builds one (`create_app()`, the relay's and the worker's `bootstrap()`,
`taskrelay run`'s and `taskrelay admin`'s checks) naming the services its process needs, and
asks it before serving: each start-up check connects once, within START_UP_TIMEOUT, and closes
again; one that fails raises DependencyUnavailable (`shared.adapters.unavailable`), which the
command line prints as one line naming the service, its URL without password, and how to
start it. The API's `/health` and `/readyz` ask the same object whether PostgreSQL answers a
query on the API's own pool, within one HEALTH_TIMEOUT for both: they need no token and are not
rate limited (a load balancer's probes must not share a budget a flood can exhaust), so they
must not cost the database a query each. `DatabaseProbe` answers from a result at most
MAX_AGE_SECONDS old, and while a query is out, every caller waits for that one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence

import aio_pika
import asyncpg
import redis.asyncio as aioredis

from shared.adapters.unavailable import POSTGRES, RABBITMQ, REDIS, translated, unavailable
from shared.config.settings import Settings
from shared.errors import DependencyUnavailable
from shared.observability.logging import silenced
from shared.service.ports import AbstractUnitOfWorkFactory

START_UP_TIMEOUT = 5.0
"""Seconds a start-up check waits for its service to accept a new connection (a server that is
itself starting, or far away, gets time; a dead one is reported within it)."""
HEALTH_TIMEOUT = 2.0
"""Seconds `/health` and `/readyz` wait for the API's pool to answer `SELECT 1`: a load balancer
asks often, and an answer slower than this is not a healthy one (docs/operations.md)."""
MAX_AGE_SECONDS = 1.0
"""How long a database answer serves `/health` and `/readyz` before it is asked again."""
SCHEMA = {"roadmap_tasks": "the schema is missing"}
"""What every process that serves needs migrated: a table, and what its absence means."""
WORKER_SCHEMA = {**SCHEMA, "task_leases": "the worker's tables are missing"}


class DatabaseProbe:
    """`check()`'s last answer while it is under `max_age` seconds old (counted from when its
    query started); else one new check, shared by every caller that comes meanwhile."""

    def __init__(
        self,
        check: Callable[[], Awaitable[bool]],
        max_age: float = MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._check, self._max_age, self._clock = check, max_age, clock
        self._answer = False
        self._started: float | None = None
        self._pending: asyncio.Future[bool] | None = None

    async def answers(self) -> bool:
        if self._started is not None and self._clock() - self._started < self._max_age:
            return self._answer
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._refresh())
        return await asyncio.shield(self._pending)  # a caller that gives up cancels no one else

    async def _refresh(self) -> bool:
        started = self._clock()
        try:
            self._answer = await self._check()
            self._started = started
        finally:
            self._pending = None
        return self._answer


class Probes:
    """The checks of the services one process needs (`needs`, in the order they are asked).

    PostgreSQL's start-up check asks for `schema`'s tables in the configured database; with
    `schema=None` it asks the maintenance database instead, so the configured one may not exist
    yet (`taskrelay run`, before `migrate` creates it).
    """

    def __init__(
        self,
        settings: Settings,
        needs: Sequence[str] = (POSTGRES,),
        *,
        schema: Mapping[str, str] | None = SCHEMA,
        timeout: float = START_UP_TIMEOUT,
        health_timeout: float = HEALTH_TIMEOUT,
    ) -> None:
        self._settings, self._needs, self._schema = settings, tuple(needs), schema
        self.timeout, self.health_timeout = timeout, health_timeout
        self._checks = {POSTGRES: self.postgres, RABBITMQ: self.rabbitmq, REDIS: self.redis}
        self._uow_factory: AbstractUnitOfWorkFactory | None = None
        self._database = DatabaseProbe(self._database_answers_now)

    async def start_up(self) -> None:
        """Each needed service in turn; DependencyUnavailable for the first that does not answer."""
        for service in self._needs:
            await self._checks[service]()

    async def postgres(self) -> None:
        """The server must answer and, with a schema, hold each of its tables (else
        DependencyUnavailable says which is missing and to run `taskrelay migrate`)."""
        database = self._settings.database
        url = database.asyncpg_dsn
        with translated(POSTGRES, url, any_error=True):
            conn = await asyncpg.connect(
                url if self._schema else database.admin_dsn, timeout=self.timeout
            )
            try:
                for table, missing in (self._schema or {}).items():
                    if not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table):
                        raise unavailable(POSTGRES, url, missing, hint="Run: taskrelay migrate")
            finally:
                await conn.close(timeout=self.timeout)

    async def rabbitmq(self) -> None:
        """The broker must accept an AMQP connection."""
        url = self._settings.broker.url
        with translated(RABBITMQ, url, any_error=True):
            with silenced("aiormq.connection"):  # it logs the failure too; our one line says it all
                connection = await asyncio.wait_for(aio_pika.connect(url), self.timeout)
            await connection.close()

    async def redis(self) -> None:
        """Redis must answer a PING."""
        url = self._settings.redis.url
        client = aioredis.Redis.from_url(
            url, socket_connect_timeout=self.timeout, socket_timeout=self.timeout
        )
        try:
            with translated(REDIS, url, any_error=True):
                await client.ping()
        finally:
            await client.aclose()

    def watch(self, uow_factory: AbstractUnitOfWorkFactory) -> None:
        """Answer `database_answers` with a query on this pool (the API's, once it has one)."""
        self._uow_factory = uow_factory

    async def database_answers(self) -> bool:
        """Did PostgreSQL answer `SELECT 1` on the watched pool within the timeout, at most
        MAX_AGE_SECONDS ago? (`/health` and `/readyz`)"""
        return await self._database.answers()

    async def _database_answers_now(self) -> bool:
        if self._uow_factory is None:
            return False
        try:
            async with asyncio.timeout(self.health_timeout), self._uow_factory() as uow:
                await uow.ping()
        except (DependencyUnavailable, TimeoutError):
            return False
        return True
