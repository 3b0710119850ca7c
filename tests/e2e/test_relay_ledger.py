"""The ledger: 5,000 committed outbox rows while the active relay is SIGKILLed again and again.

Concurrent transactions commit item-result notifications of real tasks (and roll some back on
purpose); the relay publishing them is killed at least three times mid-stream and restarted.
A queue bound to the exchange must then hold every committed row at least once, no rolled-back
row ever, and the first delivery of each notification in `seq` order per task.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from harness.processes import Process
from harness.relay import health, start_relay
from harness.resources import Resources
from harness.wait import wait_until
from shared.adapters.postgres import UnitOfWorkFactory
from tests.support.relay import Ledger, Writer

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="session")]


@pytest.fixture(name="resources", scope="module")
def resources_fixture(own: Resources) -> Resources:
    """This module's own (tests/e2e/conftest.py): its relays publish no other module's rows."""
    return own


@pytest.fixture(name="uow_factory", scope="module")
def uow_factory_fixture(own_uow_factory: UnitOfWorkFactory) -> UnitOfWorkFactory:
    return own_uow_factory


ROWS = 5000
KILLS = 3


async def test_every_committed_row_arrives_in_order_despite_sigkills(
    resources: Resources, uow_factory: UnitOfWorkFactory
) -> None:
    # Small batches, so each kill lands with a batch in flight.
    env = resources.env(TASKRELAY_RELAY_BATCH_SIZE="50")
    ledger = await Ledger().open(resources.amqp_url)
    writer = Writer(uow_factory)
    await writer.create_tasks(40)
    relay: Process = await asyncio.to_thread(start_relay, env, "ledger-0")
    writing = asyncio.create_task(writer.write(ROWS, concurrency=8, rollback_rate=0.1))
    kills = 0
    try:
        while kills < KILLS:
            await wait_until(_grown_by(ledger, 300), within=60, what="the relay to publish")
            relay.kill()
            kills += 1
            relay = await asyncio.to_thread(start_relay, env, f"ledger-{kills}")
        await writing
        await wait_until(
            lambda: _all_arrived(ledger, writer.committed),
            within=90,
            what="every committed row in the ledger",
        )
        document = await asyncio.to_thread(health, relay.port)  # type: ignore[attr-defined]
    finally:
        writing.cancel()
        relay.stop()
        await ledger.close()

    received = ledger.markers()
    assert len(writer.committed) >= ROWS
    assert writer.rolled_back, "the run must include rolled-back transactions"
    assert writer.committed <= received
    assert not writer.rolled_back & received
    assert ledger.first_delivery_order_broken({str(t) for t in writer.tasks}) == []
    assert document is not None
    assert document["role"] == "active"
    print(
        f"\nledger: {len(writer.committed)} committed, {len(writer.rolled_back)} rolled back, "
        f"{len(ledger.deliveries)} deliveries, {ledger.duplicates()} duplicates, {kills} SIGKILLs"
    )


def _grown_by(ledger: Ledger, by: int) -> Callable[[], Awaitable[bool]]:
    """A check that passes once `by` more messages than now have arrived."""
    target = len(ledger.deliveries) + by

    async def check() -> bool:
        return len(ledger.deliveries) >= target

    return check


async def _all_arrived(ledger: Ledger, committed: set[str]) -> bool:
    return committed <= ledger.markers()
