"""Outages: the link from the relay to RabbitMQ, then to PostgreSQL, is cut under load.

Each relay reaches its dependency through a TCP proxy the test cuts. `/health` must say which
dependency is down (and answer 503) within 5 s; the cut lasts until rows committed meanwhile
wait for the relay (a backlog) and at least `CUT_SECONDS`, so the relay's reconnects fail and back
off; when the link returns, nothing committed is missing and the backlog drains to zero.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from urllib.parse import quote, urlsplit, urlunsplit

import pytest

from harness.processes import Process
from harness.relay import Health, health, start_relay
from harness.resources import Resources
from harness.wait import wait_until
from shared.adapters.postgres import UnitOfWorkFactory
from tests.support.proxy import TcpProxy
from tests.support.relay import Ledger, Writer

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]


@pytest.fixture(name="resources", scope="module")
def resources_fixture(own: Resources) -> Resources:
    """This module's own (tests/e2e/conftest.py): its relays publish no other module's rows."""
    return own


@pytest.fixture(name="uow_factory", scope="module")
def uow_factory_fixture(own_uow_factory: UnitOfWorkFactory) -> UnitOfWorkFactory:
    return own_uow_factory


CUT_SECONDS = 3.0
"""The shortest cut: the relay's reconnects fail and back off to their cap (0.2 s doubling to
2 s, `shared/adapters/backoff.py`) as in a long outage; a longer cut checks nothing more."""
BACKLOG = 50
"""Rows committed during the cut before it ends: what the relay must deliver once it is back."""


@pytest.fixture(name="writer")
async def writer_fixture(uow_factory: UnitOfWorkFactory) -> Writer:
    writer = Writer(uow_factory)
    await writer.create_tasks(10)
    return writer


@pytest.fixture(name="ledger")
async def ledger_fixture(resources: Resources) -> AsyncIterator[Ledger]:
    ledger = await Ledger().open(resources.amqp_url)
    yield ledger
    await ledger.close()


async def _health(proc: Process, **expected: object) -> Health | None:
    return await asyncio.to_thread(health, proc.port, **expected)  # type: ignore[attr-defined]


async def _arrived(ledger: Ledger, committed: set[str]) -> bool:
    return committed <= ledger.markers()


async def _cut_under_load(
    relay: Process, proxy: TcpProxy, writer: Writer, ledger: Ledger, dependency: str
) -> None:
    stop = asyncio.Event()
    load = asyncio.create_task(writer.keep_writing(stop))
    try:
        await wait_until(lambda: _health(relay, status="ok"), within=15, what="relay ok")
        await wait_until(lambda: _grown(ledger, 20), what="the relay publishing under load")
        before_cut = len(writer.committed)
        proxy.cut()
        cut_at = time.monotonic()
        answer = await wait_until(
            lambda: _health(relay, **{dependency: "down"}), within=5, what=f"{dependency} down"
        )
        assert answer is not None
        document = answer.document
        noticed = time.monotonic() - cut_at
        assert answer.code == 503
        assert document["status"] == "down"
        assert document["errors"][dependency]
        await wait_until(
            lambda: _committed_since(writer, before_cut, BACKLOG, cut_at + CUT_SECONDS),
            within=60,
            what=f"{BACKLOG} rows committed during the cut, and {CUT_SECONDS} s of it",
        )
        during = await _health(relay)
        proxy.restore()
        restored_at = time.monotonic()
    finally:
        stop.set()
        await load
    assert during is not None
    assert during[dependency] == "down"
    await wait_until(
        lambda: _arrived(ledger, writer.committed), within=30, what="every committed row"
    )
    drained = time.monotonic() - restored_at
    await wait_until(lambda: _health(relay, status="ok", backlog=0), within=10, what="drained")
    print(
        f"\n{dependency} cut: noticed in {noticed:.2f} s, {len(writer.committed)} rows, "
        f"all delivered {drained:.2f} s after the link returned, "
        f"{ledger.duplicates()} duplicates, reason: {document['errors'][dependency]}"
    )


async def _committed_since(writer: Writer, before: int, rows: int, not_before: float) -> bool:
    return len(writer.committed) >= before + rows and time.monotonic() >= not_before


async def _grown(ledger: Ledger, by: int) -> bool:
    return len(ledger.deliveries) >= by


async def test_broker_cut(resources: Resources, writer: Writer, ledger: Ledger) -> None:
    proxy = TcpProxy("127.0.0.1", 5672)
    amqp = f"amqp://guest:guest@127.0.0.1:{proxy.port}/{quote(resources.vhost, safe='')}"
    relay = await asyncio.to_thread(start_relay, resources.env(AMQP_URL=amqp), "broker-cut")
    try:
        await _cut_under_load(relay, proxy, writer, ledger, "broker")
    finally:
        relay.stop()
        proxy.close()


async def test_database_cut(resources: Resources, writer: Writer, ledger: Ledger) -> None:
    proxy = TcpProxy("127.0.0.1", 5432)
    parts = urlsplit(resources.database_url)
    database = urlunsplit(parts._replace(netloc=f"postgres@127.0.0.1:{proxy.port}"))
    relay = await asyncio.to_thread(start_relay, resources.env(DATABASE_URL=database), "db-cut")
    try:
        await _cut_under_load(relay, proxy, writer, ledger, "database")
    finally:
        relay.stop()
        proxy.close()
