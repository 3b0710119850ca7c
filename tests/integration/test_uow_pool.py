"""Connections lost under the units of work's asyncpg pool, which every runtime statement
outside the relay's session runs on (the API, the worker, the relay's housekeeping): a
connection that died while idle is replaced before use, and one lost mid-transaction is
reported and never reused."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit
from uuid import UUID, uuid4

import asyncpg
import pytest

from harness import sql
from harness.wait import wait_until
from services.relay.housekeeping import Housekeeping
from shared.adapters.postgres import UnitOfWorkFactory
from shared.adapters.postgres import uow as uow_module
from shared.config.settings import DatabaseSettings, Settings
from shared.domain import ItemKey
from shared.errors import DependencyUnavailable
from tests.support.proxy import TcpProxy


def through_proxy(settings: Settings) -> tuple[TcpProxy, DatabaseSettings]:
    """A proxy the test can cut in front of the database, and the settings that go through it."""
    parts = urlsplit(settings.database.asyncpg_dsn)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    via_proxy = DatabaseSettings(
        url=settings.database.url.replace(
            f"{parts.hostname}:{parts.port}", f"127.0.0.1:{proxy.port}"
        )
    )
    return proxy, via_proxy


async def noticed_closed(uow_factory: UnitOfWorkFactory) -> None:
    """Until the pool holds no idle connection: asyncpg reads the EOF in the event loop."""
    pool = await uow_factory.pool()

    async def noticed() -> bool:
        return pool.get_idle_size() == 0

    await wait_until(noticed, what="the pool to notice the closed socket")


async def test_a_connection_cut_while_idle_is_replaced(settings: Settings) -> None:
    """The relay's housekeeping (its `/health` figures, once on an engine of its own): the
    figures are read again, without an error, on a new connection."""
    proxy, via_proxy = through_proxy(settings)
    uow_factory = UnitOfWorkFactory(via_proxy, pool_size=1)
    housekeeping = Housekeeping(
        uow_factory, retention_seconds=60, idempotency_ttl=timedelta(hours=1), batch_size=10
    )
    try:
        assert (await housekeeping.backlog()).pending >= 0
        proxy.cut()  # the pooled connection's socket is closed under it
        proxy.restore()
        await noticed_closed(uow_factory)
        assert (await housekeeping.backlog()).pending >= 0
    finally:
        await housekeeping.close()
        proxy.close()


async def test_a_pooled_connection_cut_while_idle_is_replaced(settings: Settings) -> None:
    """The unit of work's pool: a connection whose socket closed while it sat idle (a
    restarted PostgreSQL closes them all) is never handed out again; the next unit of work
    gets a new one, without an error."""
    proxy, via_proxy = through_proxy(settings)
    uow_factory = UnitOfWorkFactory(via_proxy, pool_size=1)
    try:
        async with uow_factory() as uow:
            await uow.ping()
        # The pool's one connection, the unit of work's: which server process it talks to.
        before = await sql.fetchval(uow_factory, "SELECT pg_backend_pid()")
        proxy.cut()  # the pooled connection's socket is closed under it
        proxy.restore()
        await noticed_closed(uow_factory)
        async with uow_factory() as uow:
            await uow.ping()
        after = await sql.fetchval(uow_factory, "SELECT pg_backend_pid()")
        assert after != before
    finally:
        await uow_factory.close()
        proxy.close()


async def lock_cut_commit(uow_factory: UnitOfWorkFactory, proxy: TcpProxy, task_id: UUID) -> None:
    async with uow_factory() as uow:
        await uow.tasks.lock(task_id)
        proxy.cut()
        await uow.commit()


async def test_a_unit_of_work_that_loses_its_connection_says_so_and_leaves_no_broken_one(
    settings: Settings,
) -> None:
    """The link drops before COMMIT: DependencyUnavailable, nothing committed, and the next
    unit of work gets a working connection (the broken one never went back to the pool)."""
    proxy, via_proxy = through_proxy(settings)
    uow_factory = UnitOfWorkFactory(via_proxy, pool_size=1)
    task_id = uuid4()
    try:
        with pytest.raises(DependencyUnavailable, match="PostgreSQL"):
            await lock_cut_commit(uow_factory, proxy, task_id)
        proxy.restore()
        async with uow_factory() as uow:
            assert await uow.tasks.lock(task_id) is None
            await uow.commit()
    finally:
        await uow_factory.close()
        proxy.close()


async def test_a_unit_of_work_that_gets_no_connection_in_time_says_postgresql_is_unavailable(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every pooled connection busy past the wait: DependencyUnavailable (the API's 503),
    not a request that waits for ever; the pool serves again once one comes free."""
    monkeypatch.setattr(uow_module, "ACQUIRE_TIMEOUT_SECONDS", 0.2)
    uow_factory = UnitOfWorkFactory(settings.database, pool_size=1)
    try:
        async with uow_factory() as first, uow_factory() as second:  # the pool's 2 connections
            await first.ping()
            await second.ping()
            with pytest.raises(DependencyUnavailable, match="PostgreSQL"):
                async with uow_factory():
                    pass
        async with uow_factory() as third:
            await third.ping()
    finally:
        await uow_factory.close()


async def test_closing_the_pool_does_not_wait_for_ever_for_a_stuck_unit_of_work(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shutdown with a unit of work still open (a statement stuck on a lock, say): after
    CLOSE_SECONDS its connection is cut and close() returns."""
    monkeypatch.setattr(uow_module, "CLOSE_SECONDS", 0.3)
    uow_factory = UnitOfWorkFactory(settings.database, pool_size=1)
    stuck = uow_factory()
    await stuck.__aenter__()
    try:
        await asyncio.wait_for(uow_factory.close(), timeout=10)
    finally:
        with contextlib.suppress(Exception):
            await stuck.__aexit__(None, None, None)


async def test_the_wait_stays_bounded_after_units_of_work_that_failed(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pool times a wait only when every connection is out, by its own count of them: a
    unit of work that failed on a statement, and one whose connection was lost, give their
    connection back exactly once, so a full pool still makes the next one wait, bounded."""
    monkeypatch.setattr(uow_module, "ACQUIRE_TIMEOUT_SECONDS", 0.2)
    proxy, via_proxy = through_proxy(settings)
    uow_factory = UnitOfWorkFactory(via_proxy, pool_size=1)
    try:
        items = [(ItemKey("c", "quiz"), "no such task's item")]
        with pytest.raises(asyncpg.ForeignKeyViolationError):  # the server refused it
            async with uow_factory() as uow:
                await uow.items.add_many(uuid4(), items, datetime.now(UTC))
        with pytest.raises(DependencyUnavailable):
            await lock_cut_commit(uow_factory, proxy, uuid4())
        proxy.restore()
        async with uow_factory() as first, uow_factory() as second:
            await first.ping()
            await second.ping()
            with pytest.raises(DependencyUnavailable, match="PostgreSQL"):
                await asyncio.wait_for(uow_factory().__aenter__(), timeout=10)
    finally:
        await uow_factory.close()
        proxy.close()
