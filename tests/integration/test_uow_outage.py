"""PostgreSQL stopped and started under the unit of work (a private server, really stopped).

A stop in the middle of a unit of work is DependencyUnavailable and writes nothing; opening one
while the server is down is DependencyUnavailable; and once it is back, every pooled
connection the old server held is replaced before use, so no request fails after the restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from uuid import uuid4

import asyncpg
import pytest

from harness import resources as res
from harness.servers import PrivatePostgres
from shared.adapters.postgres import UnitOfWorkFactory
from shared.config.settings import Settings
from shared.errors import DependencyUnavailable
from shared.service import NewTask, create_task

POOL = 4
NEW = NewTask("roadmap-outage", [("c1", "Closures")], ["tutorial"])


@pytest.fixture(name="resources")
def resources_fixture(private_postgres: PrivatePostgres) -> Iterator[res.Resources]:
    with res.isolated_on("taskrelay_test_uow_outage", private_postgres) as resources:
        yield resources


@pytest.fixture(name="uow_factory")
async def uows_fixture(resources: res.Resources) -> AsyncIterator[UnitOfWorkFactory]:
    settings = Settings.from_env(resources.env())
    uow_factory = UnitOfWorkFactory(settings.database, pool_size=POOL)
    try:
        yield uow_factory
    finally:
        await uow_factory.close()


async def all_at_once(uow_factory: UnitOfWorkFactory) -> None:
    """POOL units of work open at the same time: each holds a connection of its own."""
    barrier = asyncio.Barrier(POOL)

    async def one() -> None:
        async with uow_factory() as uow:
            assert await uow.tasks.lock(uuid4()) is None
            await barrier.wait()

    await asyncio.gather(*(one() for _ in range(POOL)))


async def task_rows(resources: res.Resources) -> int:
    conn = await asyncpg.connect(resources.database_url)
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM roadmap_tasks")
        return count
    finally:
        await conn.close()


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_a_stop_mid_unit_of_work_writes_nothing_and_the_pool_recovers(
    private_postgres: PrivatePostgres,
    resources: res.Resources,
    uow_factory: UnitOfWorkFactory,
    mode: str,
) -> None:
    await all_at_once(uow_factory)  # the pool now holds POOL connections to this server

    async def create_across_a_stop() -> None:
        async with uow_factory() as uow:
            await create_task(uow, "alice", NEW)
            await asyncio.to_thread(private_postgres.stop, mode)
            await uow.commit()

    with pytest.raises(DependencyUnavailable, match="PostgreSQL"):
        await create_across_a_stop()
    with pytest.raises(DependencyUnavailable, match="PostgreSQL") as refused:
        async with uow_factory():
            pass
    assert "://" not in refused.value.reason

    await asyncio.to_thread(private_postgres.start)
    # Every pooled connection died with the old server; none of them is handed out again.
    await all_at_once(uow_factory)
    assert await task_rows(resources) == 0
