"""The unit of work: one transaction, its repositories, and its outbox.

It rolls back unless `commit()` is called, so a failure anywhere before the commit leaves
neither the change nor any outbox row behind. Services write through it; whoever opened it
(an HTTP handler, a job) commits, and only then answers or logs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import TracebackType

from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncTransaction

from shared.db.idempotency import IdempotencyRepository
from shared.db.outbox import OutboxWriter
from shared.db.repositories import ItemRepository, TaskRepository


class UnitOfWork:
    tasks: TaskRepository
    items: ItemRepository
    outbox: OutboxWriter
    idempotency: IdempotencyRepository

    def __init__(
        self,
        engine: AsyncEngine,
        headers: Mapping[str, str] | None = None,
        outbox_class: type[OutboxWriter] = OutboxWriter,
    ) -> None:
        self._engine = engine
        self._headers = headers
        self._outbox_class = outbox_class
        self._conn: AsyncConnection | None = None
        self._tx: AsyncTransaction | None = None
        self._on_commit: list[Callable[[], None]] = []

    @property
    def connection(self) -> AsyncConnection:
        if self._conn is None:
            raise RuntimeError("the unit of work is not open")
        return self._conn

    async def __aenter__(self) -> UnitOfWork:
        self._conn = await self._engine.connect()
        self._tx = await self._conn.begin()
        self.tasks = TaskRepository(self._conn)
        self.items = ItemRepository(self._conn)
        self.outbox = self._outbox_class(self._conn, self._headers)
        self.idempotency = IdempotencyRepository(self._conn)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._tx is not None and self._tx.is_active:
                await self._tx.rollback()
        finally:
            if self._conn is not None:
                await self._conn.close()
            self._conn = self._tx = None

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the transaction has committed (a log line, say); never before."""
        self._on_commit.append(callback)

    async def commit(self) -> None:
        if self._tx is None:
            raise RuntimeError("the unit of work is not open")
        await self._tx.commit()
        callbacks, self._on_commit = self._on_commit, []
        for callback in callbacks:
            callback()


class UnitOfWorkFactory:
    """Makes units of work on one engine; what handlers and services receive."""

    def __init__(
        self, engine: AsyncEngine, outbox_class: type[OutboxWriter] = OutboxWriter
    ) -> None:
        self.engine = engine
        self._outbox_class = outbox_class
        """A test seam: a writer that fails on purpose proves the transaction is atomic."""

    def __call__(self, headers: Mapping[str, str] | None = None) -> UnitOfWork:
        return UnitOfWork(self.engine, headers, self._outbox_class)
