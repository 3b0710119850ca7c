"""Two relays: one active, one standby; the standby takes over within 5 s of a SIGKILL, or of
the active relay losing the database.

Who is active is checked twice: by `/health` and by who actually published. A SIGTERM finishes,
releases leadership at once and exits 0.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import urlsplit, urlunsplit

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


async def _health(proc: Process, **expected: object) -> Health | None:
    return await asyncio.to_thread(health, proc.port, **expected)  # type: ignore[attr-defined]


async def _arrived(ledger: Ledger, committed: set[str]) -> bool:
    return committed <= ledger.markers()


async def test_standby_takes_over_within_five_seconds_of_a_sigkill(
    resources: Resources, uow_factory: UnitOfWorkFactory
) -> None:
    env = resources.env()
    ledger = await Ledger().open(resources.amqp_url)
    writer = Writer(uow_factory)
    await writer.create_tasks(5)
    first = await asyncio.to_thread(start_relay, env, "failover-a")
    second: Process | None = None
    try:
        await wait_until(lambda: _health(first, role="active"), what="relay A active")
        second = await asyncio.to_thread(start_relay, env, "failover-b")
        await wait_until(lambda: _health(second, status="ok"), what="relay B up")
        await writer.write(200, rollback_rate=0)
        await wait_until(lambda: _arrived(ledger, writer.committed), what="rows via relay A")
        a, b = await _health(first), await _health(second)
        assert a is not None
        assert b is not None
        assert (a["role"], b["role"]) == ("active", "standby")
        assert a["published_total"] >= 200
        assert b["published_total"] == 0

        first.kill()
        killed_at = time.monotonic()
        await wait_until(lambda: _health(second, role="active"), within=5, what="B active")
        takeover = time.monotonic() - killed_at
        await writer.write(200, rollback_rate=0)
        await wait_until(lambda: _arrived(ledger, writer.committed), what="rows via relay B")
        b = await _health(second)
        assert b is not None
        assert b["published_total"] >= 200
        print(f"\nfailover: standby active {takeover:.2f} s after SIGKILL")
    finally:
        first.stop()
        if second is not None:
            second.stop()
        await ledger.close()


async def test_sigterm_releases_leadership_and_exits_zero(resources: Resources) -> None:
    env = resources.env()
    first = await asyncio.to_thread(start_relay, env, "term-a")
    second: Process | None = None
    try:
        await wait_until(lambda: _health(first, role="active"), what="relay A active")
        second = await asyncio.to_thread(start_relay, env, "term-b")
        await wait_until(lambda: _health(second, role="standby"), what="relay B standby")
        assert await asyncio.to_thread(first.stop) == 0, first.output()
        await wait_until(lambda: _health(second, role="active"), within=5, what="B active")
        assert "relay_stopped" in first.output()
    finally:
        first.stop()
        if second is not None:
            second.stop()


async def test_standby_takes_over_when_the_active_loses_the_database(
    resources: Resources, uow_factory: UnitOfWorkFactory
) -> None:
    proxy = TcpProxy("127.0.0.1", 5432)
    parts = urlsplit(resources.database_url)
    via_proxy = urlunsplit(parts._replace(netloc=f"postgres@127.0.0.1:{proxy.port}"))
    ledger = await Ledger().open(resources.amqp_url)
    writer = Writer(uow_factory)
    await writer.create_tasks(3)
    first = await asyncio.to_thread(start_relay, resources.env(DATABASE_URL=via_proxy), "cut-a")
    second: Process | None = None
    try:
        await wait_until(lambda: _health(first, role="active"), what="relay A active")
        second = await asyncio.to_thread(start_relay, resources.env(), "cut-b")
        await wait_until(lambda: _health(second, role="standby", status="ok"), what="B standby")
        proxy.cut()
        cut_at = time.monotonic()
        await wait_until(lambda: _health(second, role="active"), within=5, what="B active")
        takeover = time.monotonic() - cut_at
        await writer.write(100, rollback_rate=0)
        await wait_until(lambda: _arrived(ledger, writer.committed), what="rows via relay B")
        # A learns of its lost session at its next statement (its loop, or a failed reconnect):
        # under load that can come after B has delivered everything, so it is awaited.
        await wait_until(
            lambda: _health(first, role="standby", database="down"),
            within=15,
            what="relay A to report itself standby with its database down",
        )
        print(f"\nfailover: standby active {takeover:.2f} s after the active lost the database")
    finally:
        first.stop()
        if second is not None:
            second.stop()
        proxy.close()
        await ledger.close()
