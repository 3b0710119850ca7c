"""Parked outbox rows listed and put back in line (`services.relay.parking`, behind `taskrelay
admin outbox`), on the real PostgreSQL: rows are parked by the relay's own session, and a
replayed row is claimed again by it, in id order per task, with NOTIFY waking it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from uuid import uuid4

import pytest

from harness.resources import Resources
from harness.wait import wait_until
from services.relay.parking import ParkedRows
from services.relay.partitions import PartitionScheme
from services.relay.session import OutboxSession
from shared.adapters.postgres import UnitOfWorkFactory
from shared.config.settings import DatabaseSettings
from shared.errors import InvalidInput, NotFound
from tests.integration.test_relay_session import _insert
from tests.support.relay import isolated_database

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(name="dsn")
async def dsn_fixture(resources: Resources) -> AsyncIterator[str]:
    async with isolated_database(resources) as url:
        yield url


@pytest.fixture(name="parked")
async def parked_fixture(dsn: str) -> AsyncIterator[ParkedRows]:
    uow_factory = UnitOfWorkFactory(DatabaseSettings(url=dsn), pool_size=1)
    yield ParkedRows(uow_factory)
    await uow_factory.close()


async def test_parked_rows_are_listed_and_replayed_in_order_per_task(
    dsn: str, parked: ParkedRows
) -> None:
    one, other = uuid4(), uuid4()
    a1, b1, a2, a3 = [
        await _insert(dsn, task, seq) for task, seq in ((one, 1), (other, 1), (one, 2), (one, 3))
    ]
    woken: list[None] = []
    session = OutboxSession(dsn, PartitionScheme(), lambda: woken.append(None))
    await session.connect()
    try:
        await session.acquire()
        assert [r.id for r in await session.claim(10)] == [a1, b1, a2, a3]
        await session.mark_failed([(a1, "nacked", None), (b1, "too large", None)])
        await session.mark_failed([(a2, "nacked", None)])
        await session.mark_published([a3])  # a parked row hides nothing: a3 went out
        listed = await parked.parked()
        assert [(r.id, r.task_id, r.attempts, r.last_error) for r in listed] == [
            (a1, one, 1, "nacked"),
            (b1, other, 1, "too large"),
            (a2, one, 1, "nacked"),
        ]
        assert await session.claim(10) == []

        with pytest.raises(InvalidInput, match=f"outbox row {a1} of task {one}"):
            await parked.replay([a2])  # a2 ahead of a1, still parked: refused
        with pytest.raises(NotFound, match=f"outbox row {a3} is not parked"):
            await parked.replay([a1, a3])
        with pytest.raises(NotFound, match="is not parked"):
            await parked.replay([10**9])
        assert len(await parked.parked()) == 3  # nothing changed

        woken.clear()
        assert await parked.replay([a2, a1]) == [(a1, one), (a2, one)]
        await wait_until(lambda: _any(woken), within=5, what="the relays woken by NOTIFY")
        claimed = await session.claim(10)
        assert [(r.id, r.attempts) for r in claimed] == [(a1, 0), (a2, 0)]
        assert [r.id for r in await parked.parked()] == [b1]
        assert await parked.replay(None) == [(b1, other)]
        assert await parked.parked() == []
        assert await parked.replay(None) == []
    finally:
        await session.close()


async def _any(woken: list[None]) -> bool:
    return bool(woken)
