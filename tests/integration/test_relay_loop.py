"""The whole relay in this process, on real PostgreSQL and RabbitMQ: parking, cleanup, backlogs.

A row that keeps failing is parked, counted on /health and /metrics, and blocks nothing;
published rows and expired idempotency records are cleaned up after their retention; a backlog
over fewer tasks than a batch drains without waiting for a NOTIFY or the poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from harness.processes import free_port
from harness.resources import Resources
from harness.wait import wait_until
from services.relay import bootstrap
from services.relay.bootstrap import RelayProcess
from services.relay.session import OutboxSession
from shared.adapters.postgres.outbox import partition_key
from shared.config.settings import Settings
from tests.support.relay import Ledger, health, isolated_database

pytestmark = pytest.mark.asyncio(loop_scope="session")


@dataclass
class Running:
    process: RelayProcess
    port: int
    dsn: str


@pytest.fixture(name="running")
async def running_fixture(resources: Resources) -> AsyncIterator[Running]:
    async with (
        isolated_database(resources) as url,
        _relay(
            resources,
            url,
            TASKRELAY_RELAY_MAX_MESSAGE_BYTES="2048",
            TASKRELAY_RELAY_MAX_ATTEMPTS="3",
            TASKRELAY_RELAY_BACKOFF_BASE_SECONDS="0.1",
            TASKRELAY_RELAY_RETENTION_SECONDS="0.5",
            TASKRELAY_RELAY_CLEANUP_INTERVAL_SECONDS="0.5",
        ) as running,
    ):
        yield running


@contextlib.asynccontextmanager
async def _relay(resources: Resources, url: str, **settings: str) -> AsyncIterator[Running]:
    """The relay running in this process on database `url`, stopped (and waited for) after."""
    process = bootstrap(
        Settings.from_env(resources.env(DATABASE_URL=url, **settings)), port := free_port()
    )
    stopping = asyncio.Event()
    await process.health.start()
    task = asyncio.create_task(process.relay.run(stopping))
    try:
        yield Running(process, port, url)
    finally:
        stopping.set()
        await asyncio.wait_for(task, 30)
        await process.health.stop()


_INSERT = (
    "INSERT INTO outbox (message_id, task_id, partition_key, kind, routing_key, payload) "
    "VALUES ($1, $2, $3, 'notification', $4, $5::jsonb)"
)


def _row(task_id: UUID, seq: int, padding: int = 0) -> tuple[object, ...]:
    """A notification row of `task_id`, as the outbox writer shapes it."""
    payload = {"task_id": str(task_id), "seq": seq, **({"pad": "x" * padding} if padding else {})}
    key = f"notification.{task_id}"
    return (uuid4(), task_id, partition_key(task_id), key, json.dumps(payload))


async def _insert(dsn: str, task_id: UUID, seq: int, padding: int = 0) -> None:
    await _insert_rows(dsn, [_row(task_id, seq, padding)])


async def _insert_backlog(dsn: str, task_ids: list[UUID], per_task: int) -> None:
    """`per_task` rows of each task, the tasks interleaved (seq-major), so
    every batch of at least `len(task_ids)` rows spans every task."""
    rows = [_row(t, seq) for seq in range(1, per_task + 1) for t in task_ids]
    await _insert_rows(dsn, rows)


async def _insert_rows(dsn: str, rows: list[tuple[object, ...]]) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.executemany(_INSERT, rows)
    finally:
        await conn.close()


async def test_a_row_that_keeps_failing_is_parked_and_blocks_nothing(
    running: Running, resources: Resources
) -> None:
    poisoned, healthy = uuid4(), uuid4()
    ledger = await Ledger().open(resources.amqp_url, binding="notification.#")
    try:
        await _insert(running.dsn, poisoned, 1, padding=4096)  # larger than the 2 KiB limit
        await _insert(running.dsn, poisoned, 2)
        await _insert(running.dsn, healthy, 1)
        await wait_until(
            lambda: _delivered(ledger, {(str(healthy), 1), (str(poisoned), 2)}),
            within=15,
            what="the healthy task's row and the poisoned task's later row",
        )
    finally:
        await ledger.close()
    assert all(not (d.task_id == str(poisoned) and d.seq == 1) for d in ledger.deliveries)
    document = await wait_until(
        lambda: asyncio.to_thread(health, running.port, parked=1),
        what="/health counting the parked row",
    )
    assert document is not None
    assert document["status"] == "degraded"
    metrics = await asyncio.to_thread(_metrics, running.port)
    assert "taskrelay_relay_parked 1.0" in metrics
    assert 'taskrelay_relay_publish_failed_total{reason="row"} 3.0' in metrics
    conn = await asyncpg.connect(running.dsn)
    try:
        row = await conn.fetchrow(
            "SELECT attempts, last_error FROM outbox WHERE task_id=$1 AND parked_at IS NOT NULL",
            poisoned,
        )
    finally:
        await conn.close()
    assert row["attempts"] == 3
    assert "too large" in row["last_error"]


async def test_published_rows_and_old_idempotency_records_are_cleaned_up(
    running: Running,
) -> None:
    conn = await asyncpg.connect(running.dsn)
    try:
        await conn.execute(
            "INSERT INTO idempotency_keys (owner_id, key, request_hash, response_status, "
            "response_body, created_at) VALUES "
            "('u', 'old', 'h', 201, '{}', now() - interval '25 hours'), "
            "('u', 'new', 'h', 201, '{}', now())"
        )
        for seq in range(1, 6):
            await _insert(running.dsn, uuid4(), seq)

        async def cleaned() -> bool:
            outbox = await conn.fetchval("SELECT count(*) FROM outbox")
            keys = await conn.fetch("SELECT key FROM idempotency_keys")
            return outbox == 0 and [k["key"] for k in keys] == ["new"]

        await wait_until(cleaned, within=15, what="the outbox and old keys cleaned up")
    finally:
        await conn.close()
    document = await asyncio.to_thread(health, running.port)
    assert document is not None
    assert document["published_total"] >= 5


async def test_a_backlog_over_fewer_tasks_than_a_batch_drains_without_notify_or_poll(
    resources: Resources,
) -> None:
    """Every batch holds rows of every task, so the claim pipelined behind it finds nothing;
    the relay must claim again once that batch is marked, not sleep for the 30 s poll."""
    task_ids, per_task = [uuid4() for _ in range(5)], 600
    async with isolated_database(resources) as url:
        # Written before the relay LISTENs: no NOTIFY will ever announce these rows.
        await _insert_backlog(url, task_ids, per_task)
        wanted = {(str(t), seq) for t in task_ids for seq in range(1, per_task + 1)}
        ledger = await Ledger().open(resources.amqp_url, binding="notification.#")
        try:
            async with _relay(
                resources,
                url,
                TASKRELAY_RELAY_BATCH_SIZE="50",
                TASKRELAY_RELAY_POLL_INTERVAL_SECONDS="30",
            ):
                # Before the fix each 50-row batch after the first cost a 30 s poll.
                await wait_until(
                    lambda: _drained(url, ledger, wanted),
                    within=20,
                    what="the 3,000-row backlog to drain well within one poll interval",
                )
        finally:
            await ledger.close()
    assert ledger.first_delivery_order_broken({str(t) for t in task_ids}) == []


async def _delivered(ledger: Ledger, wanted: set[tuple[str, int | None]]) -> bool:
    return wanted <= {(d.task_id, d.seq) for d in ledger.deliveries}


async def _drained(dsn: str, ledger: Ledger, wanted: set[tuple[str, int | None]]) -> bool:
    if not await _delivered(ledger, wanted):
        return False
    conn = await asyncpg.connect(dsn)
    try:
        pending = await conn.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
    finally:
        await conn.close()
    return pending == 0


def _metrics(port: int) -> str:
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
        return str(response.read().decode())


async def test_live_rows_cost_one_claim_each(
    resources: Resources, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows committed one at a time, each published before the next: once a row is marked,
    the relay waits for the next commit's NOTIFY instead of claiming again at once (a claim
    that could only come back empty: one more round trip per row)."""
    claims: list[int] = []
    claim = OutboxSession.claim

    async def counted(self: OutboxSession, *args: Any, **kwargs: Any) -> Any:
        rows = await claim(self, *args, **kwargs)
        claims.append(len(rows))
        return rows

    monkeypatch.setattr(OutboxSession, "claim", counted)
    task_id, rows = uuid4(), 40
    async with isolated_database(resources) as url:
        ledger = await Ledger().open(resources.amqp_url, binding="notification.#")
        try:
            async with _relay(resources, url, TASKRELAY_RELAY_POLL_INTERVAL_SECONDS="30"):
                await wait_until(lambda: _claimed_once(claims), what="the relay's first claim")
                before = len(claims)
                for seq in range(1, rows + 1):
                    await _insert(url, task_id, seq)
                    await wait_until(
                        lambda seq=seq: _delivered(ledger, {(str(task_id), seq)}),
                        what=f"row {seq} published",
                    )
                live = claims[before:]
        finally:
            await ledger.close()
    assert sum(live) == rows
    # One claim per row, a few more where a NOTIFY came while a row was in flight; an empty
    # claim after every row would make it twice as many.
    assert len(live) <= rows + rows // 4, live


async def _claimed_once(claims: list[int]) -> bool:
    return bool(claims)


async def test_an_idle_relay_stops_at_once_whatever_its_poll_interval(
    resources: Resources,
) -> None:
    """Waiting for a NOTIFY with a 30 s poll, the active relay is asked to stop: it returns at
    once (a SIGTERM hands the partitions to a standby only when it has)."""
    async with isolated_database(resources) as url:
        settings = resources.env(DATABASE_URL=url, TASKRELAY_RELAY_POLL_INTERVAL_SECONDS="30")
        process = bootstrap(Settings.from_env(settings), free_port())
        stopping = asyncio.Event()
        task = asyncio.create_task(process.relay.run(stopping))
        try:
            await wait_until(lambda: _active(process), what="the relay active, its broker link up")
            await asyncio.sleep(0.5)  # its claim came back empty: it waits for a NOTIFY
        finally:
            stopping.set()
            await asyncio.wait_for(task, 5)


async def _active(process: RelayProcess) -> bool:
    return bool(process.state.owned) and process.publisher.connected
