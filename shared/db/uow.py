"""The unit of work: one connection, one transaction, every repository on it.

It rolls back unless `commit()` is called, so a failure anywhere before the commit leaves
neither the change nor any outbox row behind. Services write through it, typed against
`shared.db.abstract.AbstractUnitOfWork`; whoever opened it (an HTTP handler, a job) commits,
and only then answers or logs.

The transaction is asyncpg's own, on the connection SQLAlchemy's pool hands out (the pool
pings idle connections and replaces dead ones). Every repository runs prepared `$n` SQL
(`shared.db.sql`) on that asyncpg connection. Losing PostgreSQL inside a unit of work is
reported as DependencyUnavailable: `connection_lost` is the one place that tells an outage
(refused, starting up, shutting down, link dropped, pool or connect timeout) from a bad
statement, and the transaction is rolled back or its connection discarded first, so nothing
is half-written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

import asyncpg
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.pool import PoolProxiedConnection
from sqlalchemy.util import greenlet_spawn

from shared.db.errors import connection_lost
from shared.db.idempotency import IdempotencyRepository
from shared.db.inbox import InboxRepository
from shared.db.items import ItemRepository
from shared.db.leases import LeaseRepository
from shared.db.liveness import LivenessRepository
from shared.db.outbox import OutboxWriter
from shared.db.tasks import TaskRepository
from shared.dependencies import POSTGRES, unavailable
from shared.errors import DependencyUnavailable, TaskRelayError


class UnitOfWork:
    """The real `AbstractUnitOfWork`, on PostgreSQL; the repositories exist while it is open."""

    tasks: TaskRepository
    items: ItemRepository
    outbox: OutboxWriter
    leases: LeaseRepository
    inbox: InboxRepository
    idempotency: IdempotencyRepository
    liveness: LivenessRepository

    def __init__(
        self,
        engine: AsyncEngine,
        headers: Mapping[str, str] | None = None,
        outbox_class: type[OutboxWriter] = OutboxWriter,
    ) -> None:
        self._engine = engine
        self._headers = headers
        self._outbox_class = outbox_class
        self._raw: PoolProxiedConnection | None = None
        self._conn: AsyncConnection | None = None
        self._tx: Any = None
        self._on_commit: list[Callable[[], None]] = []

    @property
    def connection(self) -> AsyncConnection:
        """SQLAlchemy's view of the same connection and transaction, for tests' ad-hoc queries.

        Not part of `AbstractUnitOfWork`: services go through the repositories only. Made on
        first use. It is in AUTOCOMMIT mode so that SQLAlchemy issues no BEGIN of its own; its
        statements run in the asyncpg transaction.
        """
        if self._raw is None:
            raise RuntimeError("the unit of work is not open")
        if self._conn is None:
            sync = Connection(self._engine.sync_engine, connection=self._raw)
            sync.execution_options(isolation_level="AUTOCOMMIT")
            self._conn = AsyncConnection(self._engine, sync)
        return self._conn

    async def __aenter__(self) -> UnitOfWork:
        try:
            raw = await self._engine.raw_connection()
        except Exception as exc:
            # Refused, or a login the server turns down (a wrong database, say): either way
            # PostgreSQL is not there for this process.
            if connection_lost(exc) or isinstance(exc, DBAPIError):
                raise self._unavailable(exc) from exc
            raise
        driver: Any = raw.driver_connection
        try:
            self._tx = driver.transaction()
            await self._tx.start()
        except BaseException as exc:
            lost = _lost_on(raw, exc)
            await self._discard(raw, lost, exc)
            if lost:
                raise self._unavailable(exc) from exc
            raise
        self._raw = raw
        self.tasks = TaskRepository(driver)
        self.items = ItemRepository(driver)
        self.outbox = self._outbox_class(driver, self._headers)
        self.leases = LeaseRepository(driver)
        self.inbox = InboxRepository(driver)
        self.idempotency = IdempotencyRepository(driver)
        self.liveness = LivenessRepository(driver)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        raw, conn, tx = self._raw, self._conn, self._tx
        self._raw = self._conn = self._tx = None
        if raw is None:
            return
        lost = _lost_on(raw, exc)
        try:
            if tx is not None:
                await tx.rollback()
        except BaseException as error:
            # The connection's state is unknown (lost, or cancelled mid-rollback): the pool
            # must not hand it out again.
            failed_too = _lost_on(raw, error)
            await self._discard(raw, lost or failed_too, error)
            if not (isinstance(error, asyncpg.PostgresError) or failed_too):
                raise
        else:
            if lost and exc is not None:
                await self._discard(raw, lost, exc)
            elif conn is not None:
                await conn.close()  # gives the connection back to the pool
            else:
                await greenlet_spawn(raw.close)
        if lost and exc is not None:
            raise self._unavailable(exc) from exc

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the transaction has committed (a log line, say); never before."""
        self._on_commit.append(callback)

    async def ping(self) -> None:
        """One round trip (`SELECT 1`); an outage surfaces as DependencyUnavailable on exit."""
        if self._raw is None:
            raise RuntimeError("the unit of work is not open")
        driver: Any = self._raw.driver_connection
        await driver.fetchval("SELECT 1")

    async def commit(self) -> None:
        if self._tx is None:
            raise RuntimeError("the unit of work is not open")
        await self._tx.commit()  # if this fails, __aexit__ finds the transaction and discards
        self._tx = None
        callbacks, self._on_commit = self._on_commit, []
        for callback in callbacks:
            callback()

    def _unavailable(self, exc: BaseException) -> DependencyUnavailable:
        return unavailable(POSTGRES, self._engine.url.render_as_string(hide_password=False), exc)

    async def _discard(self, raw: PoolProxiedConnection, lost: bool, cause: BaseException) -> None:
        """Close `raw` for good; when PostgreSQL went away, retire every pooled connection too.

        A restarted PostgreSQL has dropped them all: the pool replaces each at its next
        checkout (as SQLAlchemy itself does on a disconnect) instead of failing one request
        per dead connection.
        """
        if lost:
            self._engine.sync_engine.pool._invalidate(raw, cause, _checkin=False)
        await greenlet_spawn(_invalidate, raw)


def _lost_on(raw: PoolProxiedConnection, exc: BaseException | None) -> bool:
    """`connection_lost(exc)`, or a driver error on a connection that has since closed.

    A server shutting down may send its FATAL while the connection sits idle in a
    transaction: asyncpg then fails the next statement with an InternalClientError
    ("another operation is in progress") rather than a connection error.
    """
    if connection_lost(exc):
        return True
    if not isinstance(exc, Exception) or isinstance(exc, TaskRelayError):
        return False
    driver: Any = raw.driver_connection
    return driver is None or bool(driver.is_closed())


def _invalidate(raw: PoolProxiedConnection) -> None:
    if raw.dbapi_connection is not None:
        raw.invalidate()


class UnitOfWorkFactory:
    """Makes units of work on one engine: the real `AbstractUnitOfWorkFactory`."""

    def __init__(
        self, engine: AsyncEngine, outbox_class: type[OutboxWriter] = OutboxWriter
    ) -> None:
        self.engine = engine
        self._outbox_class = outbox_class
        """A test seam: a writer that fails on purpose proves the transaction is atomic."""

    def __call__(self, headers: Mapping[str, str] | None = None) -> UnitOfWork:
        return UnitOfWork(self.engine, headers, self._outbox_class)
