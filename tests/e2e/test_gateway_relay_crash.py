"""Sockets across a relay crash: the standby takes over and republishes what the dead relay
may have sent but not marked; no socket sees a `seq` twice or misses one.

Two real relays (one active, one standby), a real API, watchers on a task that is generating;
the active relay is killed (SIGKILL) halfway through. A ledger queue bound to `#` records what
the broker actually carried, duplicates included, to show what the gateway had to drop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from uuid import UUID

import pytest

from harness.processes import Process, stop_all
from harness.relay import health, start_relay
from harness.resources import SECRET, Resources
from harness.wait import wait_until_sync
from harness.ws import Watch
from shared.adapters.postgres import UnitOfWorkFactory
from shared.service.auth import issue_token
from tests.support import tasks
from tests.support.relay import Ledger

pytestmark = pytest.mark.slow


@pytest.fixture(name="relays", scope="module")
def relays_fixture(resources: Resources) -> Iterator[list[Process]]:
    relays = [start_relay(resources.env(), name=f"relay-crash-{i}") for i in range(2)]
    try:
        yield relays
    finally:
        stop_all(relays)


@pytest.fixture(name="api", scope="module")
def api_fixture(base_url: str, relays: list[Process]) -> str:
    """The session's API (tests/e2e/conftest.py), once this module's relays run."""
    return base_url


def _active(relays: list[Process]) -> Process:
    def find() -> Process | None:
        for relay in relays:
            state = health(relay.port)  # type: ignore[attr-defined]
            if relay.alive() and state is not None and state.get("role") == "active":
                return relay
        return None

    active = wait_until_sync(find, within=30, what="an active relay")
    assert active is not None
    return active


async def _generate_with_crash(
    uow_factory: UnitOfWorkFactory, task_id: UUID, relays: list[Process]
) -> int:
    await tasks.start(uow_factory, task_id)
    keys = await tasks.pending_keys(uow_factory, task_id)
    for i, key in enumerate(keys):
        if i == len(keys) // 2:
            await asyncio.to_thread(_active(relays).kill)  # mid-batch, as far as it knows
        await tasks.item_result(uow_factory, task_id, key, ok=True)
        await asyncio.sleep(0.02)  # spread the changes out in time
    return await tasks.finish(uow_factory, task_id)


async def test_watchers_see_each_seq_once_across_a_relay_crash(
    api: str, resources: Resources, relays: list[Process], uow_factory: UnitOfWorkFactory
) -> None:
    ledger = await Ledger().open(resources.amqp_url, binding="notification.#")
    try:
        task_id = await tasks.new_task(uow_factory, "carol", 40)
        token = issue_token(SECRET, "carol", 600)
        watches = [await Watch.open(api, task_id, token) for _ in range(5)]
        for watch in watches:
            await watch.wait_frames(1)  # the snapshot: seq 0
        final = await _generate_with_crash(uow_factory, task_id, relays)
        for watch in watches:
            await watch.wait_seq(final, within=60)
            assert [f["type"] for f in watch.frames].count("snapshot") == 1
            assert watch.progress_seqs == list(range(1, final + 1))
            await watch.close()
        carried = [d for d in ledger.deliveries if d.task_id == str(task_id)]
        print(f"the broker carried {len(carried)} notifications for {final} seqs")
    finally:
        await ledger.close()
