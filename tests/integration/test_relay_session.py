"""The relay's dedicated session against the real PostgreSQL: LISTEN, leadership, fenced claims.

Each test runs on a database of its own, so the claims see only the rows the test wrote.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from harness.resources import Resources
from harness.wait import wait_until
from services.relay.partitions import PartitionScheme
from services.relay.session import SESSION_SETTINGS, OutboxSession
from shared.adapters.postgres.outbox import partition_key
from shared.adapters.postgres.outbox.delivery import CLAIM_ALL, claim_owned
from tests.support.relay import isolated_database

pytestmark = pytest.mark.asyncio(loop_scope="session")


@pytest.fixture(name="dsn")
async def dsn_fixture(resources: Resources) -> AsyncIterator[str]:
    async with isolated_database(resources) as url:
        yield url


async def _insert(dsn: str, task_id: UUID, seq: int) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        row_id: int = await conn.fetchval(
            "INSERT INTO outbox (message_id, task_id, partition_key, kind, routing_key, payload) "
            "VALUES ($1, $2, $3, 'notification', $4, $5::jsonb) RETURNING id",
            uuid4(),
            task_id,
            partition_key(task_id),
            f"notification.{task_id}",
            json.dumps({"task_id": str(task_id), "seq": seq}),
        )
    finally:
        await conn.close()
    return row_id


async def _session(dsn: str, scheme: PartitionScheme | None = None, **kw: Any) -> OutboxSession:
    session = OutboxSession(dsn, scheme or PartitionScheme(), kw.get("on_notify", lambda: None))
    await session.connect()
    return session


async def test_claim_keeps_a_delayed_rows_task_behind_it(dsn: str) -> None:
    slow, fast = uuid4(), uuid4()
    s1 = await _insert(dsn, slow, 1)
    f1 = await _insert(dsn, fast, 1)
    s2 = await _insert(dsn, slow, 2)
    session = await _session(dsn)
    try:
        await session.acquire()
        rows = await session.claim(10)
        assert [r.id for r in rows] == [s1, f1, s2]
        assert [r.seq for r in rows] == [1, 1, 2]
        await session.mark_failed([(s1, "nacked", 3600.0)])
        assert [r.id for r in await session.claim(10)] == [f1]
        await session.mark_failed([(s1, "nacked again", None)])  # parked: blocks no more
        assert [r.id for r in await session.claim(10)] == [f1, s2]
        assert sorted(await session.mark_published([f1, s2])) == sorted([f1, s2])
        assert await session.mark_published([f1]) == []  # a second mark changes nothing
        assert await session.claim(10) == []
    finally:
        await session.close()
    conn = await asyncpg.connect(dsn)
    try:
        parked = await conn.fetchrow(
            "SELECT attempts, last_error, parked_at FROM outbox WHERE id=$1", s1
        )
    finally:
        await conn.close()
    assert parked["attempts"] == 2
    assert parked["last_error"] == "nacked again"
    assert parked["parked_at"] is not None


async def test_one_leader_then_the_standby_takes_over(dsn: str) -> None:
    first, second = await _session(dsn), await _session(dsn)
    try:
        assert await first.acquire() == frozenset({0})
        assert await second.acquire() == frozenset()
        await first.close()  # releases the lock, as a SIGTERM does
        assert await second.acquire() == frozenset({0})
    finally:
        await first.close()
        await second.close()


async def test_partitions_split_the_tasks_between_relays(dsn: str) -> None:
    scheme = PartitionScheme(count=4, max_owned=2)
    tasks = [uuid4() for _ in range(40)]
    for task_id in tasks:
        await _insert(dsn, task_id, 1)
    a, b = await _session(dsn, scheme), await _session(dsn, scheme)
    try:
        owned_a, owned_b = await a.acquire(), await b.acquire()
        assert owned_a == {0, 1}
        assert owned_b == {2, 3}
        rows_a, rows_b = await a.claim(100), await b.claim(100)
    finally:
        await a.close()
        await b.close()
    assert {r.task_id for r in rows_a} | {r.task_id for r in rows_b} == set(tasks)
    assert all(partition_key(r.task_id) % 4 in owned_a for r in rows_a)
    assert all(partition_key(r.task_id) % 4 in owned_b for r in rows_b)


async def test_a_commit_wakes_the_listening_session(dsn: str) -> None:
    woken = asyncio.Event()
    session = await _session(dsn, on_notify=woken.set)
    try:
        await _insert(dsn, uuid4(), 1)
        await wait_until(_is_set(woken), within=5, what="the NOTIFY")
    finally:
        await session.close()


def _is_set(event: asyncio.Event) -> Any:
    async def check() -> bool:
        return event.is_set()

    return check


@pytest.mark.parametrize("owned", ["all", "some"])
async def test_a_claims_cached_generic_plan_walks_the_unpublished_index(
    dsn: str, owned: str
) -> None:
    """The session caches its claim's plan: even planned for no particular values, over a
    backlog the statistics have not seen (they say nothing is pending), that plan walks the
    unpublished rows' index in id order and stops at the limit; no sort, no bitmap or sequential
    scan of the backlog."""
    conn = await asyncpg.connect(dsn, server_settings=SESSION_SETTINGS)
    try:
        # Statistics taken while every row was published, then a backlog they do not know of.
        await conn.execute(_BACKLOG + ", clock_timestamp() FROM generate_series(1, 20000) AS n")
        await conn.execute("ANALYZE outbox")
        await conn.execute(_BACKLOG + ", NULL FROM generate_series(20001, 40000) AS n")
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        claim = (
            CLAIM_ALL if owned == "all" else claim_owned(PartitionScheme(2).buckets(frozenset({0})))
        )
        await conn.execute(f"PREPARE claim AS {claim}")
        plan = await conn.fetchval("EXPLAIN (FORMAT JSON) EXECUTE claim(100, '{}')")
    finally:
        await conn.close()
    top = json.loads(plan)[0]["Plan"]
    nodes = list(_nodes(top))
    assert top["Node Type"] == "Limit", top
    kinds = {node["Node Type"] for node in nodes}
    assert not kinds & {"Sort", "Incremental Sort", "Seq Scan", "Bitmap Heap Scan"}, kinds
    [scan] = [node for node in nodes if node.get("Alias") == "o"]
    assert (scan["Node Type"], scan.get("Index Name")) == ("Index Scan", "outbox_unpublished_idx")


_BACKLOG = (
    "INSERT INTO outbox (message_id, task_id, partition_key, kind, routing_key, payload, "
    "published_at) SELECT gen_random_uuid(), md5((n % 50)::text)::uuid, n % 256, "
    "'notification', 'notification.x', jsonb_build_object('seq', n)"
)


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)
