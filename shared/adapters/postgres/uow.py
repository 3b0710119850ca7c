"""The unit of work: one connection, one transaction, every repository on it.

It rolls back unless `commit()` is called, so a failure anywhere before the commit leaves
neither the change nor any outbox row behind. Services write through it, typed against
`shared.service.ports.AbstractUnitOfWork`; whoever opened it (an HTTP handler, a job) commits,
and only then answers or logs.

The connection comes from asyncpg's own pool and the transaction is asyncpg's: every
repository runs prepared `$n` SQL (`shared.adapters.postgres.sql`) on that connection, so nothing
between a request and its statements leaves the event loop. (SQLAlchemy's pool handed out the same
asyncpg connections, but each checkout and check-in went through a greenlet: about a quarter
of the API's CPU per retry under load, in bench/api_retry.py.) A connection whose socket
closes while idle is noticed by asyncpg and replaced at its next checkout. Losing PostgreSQL
inside a unit of work is reported as DependencyUnavailable: `connection_lost` (in
`shared.adapters.unavailable`) is the one place that tells an outage (refused, starting up,
shutting down, link dropped, pool or connect timeout) from a bad statement, and the transaction
is rolled back or its connection discarded first, so nothing is half-written.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

import asyncpg

from shared.adapters.postgres.idempotency import IdempotencyRepository
from shared.adapters.postgres.inbox import InboxRepository
from shared.adapters.postgres.items import ItemRepository
from shared.adapters.postgres.leases import LeaseRepository
from shared.adapters.postgres.liveness import LivenessRepository
from shared.adapters.postgres.outbox import OutboxDelivery, OutboxWriter
from shared.adapters.postgres.tasks import TaskRepository
from shared.adapters.postgres.turns import TurnRepository
from shared.adapters.unavailable import POSTGRES, connection_lost, unavailable
from shared.config.settings import DatabaseSettings
from shared.errors import DependencyUnavailable, TaskRelayError

CONNECT_TIMEOUT_SECONDS = 10.0
"""A connection attempt that hangs (an unreachable host) fails after this, not asyncpg's 60 s."""
ACQUIRE_TIMEOUT_SECONDS = 30.0
"""How long a unit of work waits for a pooled connection to come free (SQLAlchemy's default)."""
IDLE_CONNECTION_SECONDS = 300.0
"""A pooled connection unused this long is closed; the pool opens one again when needed."""
CLOSE_SECONDS = 10.0
"""How long closing the pool waits for units of work still open (within the 30 s in which
every process stops on SIGTERM)."""


class UnitOfWork:
    """The real `AbstractUnitOfWork`, on PostgreSQL; the repositories exist while it is open."""

    tasks: TaskRepository
    items: ItemRepository
    outbox: OutboxWriter
    leases: LeaseRepository
    inbox: InboxRepository
    idempotency: IdempotencyRepository
    liveness: LivenessRepository
    turns: TurnRepository
    outbox_delivery: OutboxDelivery
    """Not part of `AbstractUnitOfWork`: the relay's housekeeping and `taskrelay admin outbox`
    read the backlog, clean up and replay parked rows through it; no service does."""

    def __init__(
        self,
        factory: UnitOfWorkFactory,
        headers: Mapping[str, str] | None = None,
        outbox_class: type[OutboxWriter] = OutboxWriter,
    ) -> None:
        self._factory = factory
        self._headers = headers
        self._outbox_class = outbox_class
        self._driver: Any = None
        """The pooled asyncpg connection (asyncpg ships no type hints)."""
        self._tx: Any = None
        self._on_commit: list[Callable[[], None]] = []

    async def __aenter__(self) -> UnitOfWork:
        try:
            driver = await self._factory.acquire()
        except Exception as exc:
            # Refused, timed out, or a login the server turns down (a wrong database, say):
            # either way PostgreSQL is not there for this process.
            if connection_lost(exc) or isinstance(exc, asyncpg.PostgresError):
                raise self._unavailable(exc) from exc
            raise
        try:
            self._tx = driver.transaction()
            await self._tx.start()
        except BaseException as exc:
            lost = _lost_on(driver, exc)
            await self._factory.discard(driver, lost)
            if lost:
                raise self._unavailable(exc) from exc
            raise
        self._driver = driver
        self.tasks = TaskRepository(driver)
        self.items = ItemRepository(driver)
        self.outbox = self._outbox_class(driver, self._headers)
        self.leases = LeaseRepository(driver)
        self.inbox = InboxRepository(driver)
        self.idempotency = IdempotencyRepository(driver)
        self.liveness = LivenessRepository(driver)
        self.turns = TurnRepository(driver)
        self.outbox_delivery = OutboxDelivery(driver)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        driver, tx = self._driver, self._tx
        self._driver = self._tx = None
        if driver is None:
            return
        lost = _lost_on(driver, exc)
        try:
            if tx is not None:
                await tx.rollback()
        except BaseException as error:
            # The connection's state is unknown (lost, or cancelled mid-rollback): the pool
            # must not hand it out again.
            failed_too = _lost_on(driver, error)
            await self._factory.discard(driver, lost or failed_too)
            if not (isinstance(error, asyncpg.PostgresError) or failed_too):
                raise
        else:
            if lost and exc is not None:
                await self._factory.discard(driver, lost)
            else:
                await self._factory.release(driver)
        if lost and exc is not None:
            raise self._unavailable(exc) from exc

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the transaction has committed (a log line, say); never before."""
        self._on_commit.append(callback)

    async def ping(self) -> None:
        """One round trip (`SELECT 1`); an outage surfaces as DependencyUnavailable on exit."""
        if self._driver is None:
            raise RuntimeError("the unit of work is not open")
        await self._driver.fetchval("SELECT 1")

    async def commit(self) -> None:
        if self._tx is None:
            raise RuntimeError("the unit of work is not open")
        await self._tx.commit()  # if this fails, __aexit__ finds the transaction and discards
        self._tx = None
        callbacks, self._on_commit = self._on_commit, []
        for callback in callbacks:
            callback()

    def _unavailable(self, exc: BaseException) -> DependencyUnavailable:
        return unavailable(POSTGRES, self._factory.database.asyncpg_dsn, exc)


def _lost_on(driver: Any, exc: BaseException | None) -> bool:
    """`connection_lost(exc)`, or a driver error on a connection that has since closed.

    A server shutting down may send its FATAL while the connection sits idle in a
    transaction: asyncpg then fails the next statement with an InternalClientError
    ("another operation is in progress") rather than a connection error.
    """
    if connection_lost(exc):
        return True
    if not isinstance(exc, Exception) or isinstance(exc, TaskRelayError):
        return False
    try:
        return bool(driver.is_closed())
    except asyncpg.InterfaceError:  # closed, and freed by asyncpg already
        return True


class UnitOfWorkFactory:
    """Makes units of work on one database: the real `AbstractUnitOfWorkFactory`.

    The units of work run on an asyncpg pool of `database`, made on first use inside the running
    event loop: at most twice `pool_size` connections (`database.pool_size` unless given), each
    closed after IDLE_CONNECTION_SECONDS unused. `close()` closes it.
    """

    def __init__(
        self,
        database: DatabaseSettings,
        *,
        pool_size: int | None = None,
        outbox_class: type[OutboxWriter] = OutboxWriter,
    ) -> None:
        self.database = database
        self._max_connections = 2 * (pool_size or database.pool_size)
        self._outbox_class = outbox_class
        """A test seam: a writer that fails on purpose proves the transaction is atomic."""
        self._pool: asyncpg.Pool | None = None
        self._checked_out = 0
        """Connections handed to units of work and not yet released or discarded."""
        self._opening = asyncio.Lock()

    def __call__(self, headers: Mapping[str, str] | None = None) -> UnitOfWork:
        return UnitOfWork(self, headers, self._outbox_class)

    async def pool(self) -> asyncpg.Pool:
        """The pool, made on the first call; it connects nothing until a unit of work asks."""
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self.database.asyncpg_dsn,
                        min_size=0,
                        max_size=self._max_connections,
                        max_inactive_connection_lifetime=IDLE_CONNECTION_SECONDS,
                        timeout=CONNECT_TIMEOUT_SECONDS,
                        init=_json_codecs,
                        reset=_nothing_to_reset,
                    )
        return self._pool

    async def acquire(self) -> Any:
        """A pooled connection, waiting at most ACQUIRE_TIMEOUT_SECONDS for one to come free.

        The wait is timed only when every connection is out: otherwise asyncpg hands one over
        at once (a new connection has its own limits, CONNECT_TIMEOUT_SECONDS for the connect
        and for `_json_codecs`), and a timer armed and cancelled for every unit of work cost
        ~5 us of the API's CPU per request. Not acquire(timeout=...): asyncpg runs that wait
        in a Task of its own.
        """
        pool = await self.pool()
        if self._checked_out < self._max_connections:
            driver = await pool.acquire()
        else:
            async with asyncio.timeout(ACQUIRE_TIMEOUT_SECONDS):
                driver = await pool.acquire()
        self._checked_out += 1
        return driver

    async def release(self, driver: Any) -> None:
        """Give a connection whose transaction has ended back to the pool."""
        self._checked_out -= 1
        if self._pool is not None:
            await self._pool.release(driver)

    async def discard(self, driver: Any, lost: bool) -> None:
        """Close `driver` for good; when PostgreSQL went away, retire every pooled connection
        too: a restarted PostgreSQL has dropped them all, and the pool replaces each at its
        next checkout instead of failing one request per dead connection."""
        if lost and self._pool is not None:
            await self._pool.expire_connections()
        # Gives its place in the pool back. A connection whose socket closed was freed by
        # asyncpg already: it refuses every call then.
        self._checked_out -= 1
        with contextlib.suppress(asyncpg.InterfaceError):
            driver.terminate()

    async def close(self) -> None:
        """Close the pool's connections. Units of work still open get CLOSE_SECONDS to end;
        then their connections are cut, so that a stuck one cannot hold a process's shutdown."""
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                async with asyncio.timeout(CLOSE_SECONDS):
                    await pool.close()
            except TimeoutError:
                pool.terminate()


async def _json_codecs(driver: Any) -> None:
    """JSON codecs (as SQLAlchemy's asyncpg dialect installs them), so that every repository
    passes JSON text and reads decoded values. Bounded like the connect before it: a unit of
    work waits for this untimed when a pooled connection is free (`UnitOfWorkFactory.acquire`)."""
    async with asyncio.timeout(CONNECT_TIMEOUT_SECONDS):
        await driver.set_type_codec(
            "json",
            encoder=str.encode,
            decoder=lambda value: json.loads(value.decode()),
            schema="pg_catalog",
            format="binary",
        )
        await driver.set_type_codec(
            "jsonb",
            encoder=lambda text: b"\x01" + text.encode(),  # the binary jsonb format's version 1
            decoder=lambda value: json.loads(value[1:].decode()),
            schema="pg_catalog",
            format="binary",
        )


async def _nothing_to_reset(_driver: Any) -> None:
    """Instead of asyncpg's reset at release (a round trip: unlock advisory locks, close
    cursors, UNLISTEN, RESET ALL): a unit of work takes no advisory lock, opens no cursor,
    listens to nothing and sets nothing for the session, and always ends its transaction."""
