"""Ad-hoc SQL in tests and benchmarks, on a connection of the unit of work factory's own
asyncpg pool.

Tests read what the product wrote (rows no repository returns as such: a task's whole row, its
outbox payloads) and set up what is hard to provoke on cue (a lease that lapsed long ago, an
inbox record a week old) with plain `$n` SQL, the product's one SQL style. The connection is
taken outside any unit of work (the product's units of work expose none), so each statement
commits on its own; JSON columns come back decoded, as the repositories read them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from shared.adapters.postgres import UnitOfWorkFactory


@asynccontextmanager
async def connection(uow_factory: UnitOfWorkFactory) -> AsyncIterator[Any]:
    """A pooled asyncpg connection of `uow_factory`, given back after the block."""
    driver = await uow_factory.acquire()
    try:
        yield driver
    finally:
        await uow_factory.release(driver)


async def fetch(uow_factory: UnitOfWorkFactory, query: str, *args: Any) -> list[Any]:
    """The rows of `query` (asyncpg records: `row["column"]` or `row[0]`)."""
    async with connection(uow_factory) as conn:
        return list(await conn.fetch(query, *args))


async def fetchval(uow_factory: UnitOfWorkFactory, query: str, *args: Any) -> Any:
    """The first column of the first row of `query` (None without one)."""
    async with connection(uow_factory) as conn:
        return await conn.fetchval(query, *args)


async def execute(uow_factory: UnitOfWorkFactory, query: str, *args: Any) -> str:
    """Run (and commit) one statement; asyncpg's command status, such as `UPDATE 1`."""
    async with connection(uow_factory) as conn:
        status: str = await conn.execute(query, *args)
        return status
