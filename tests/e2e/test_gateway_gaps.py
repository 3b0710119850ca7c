"""The gateway against what a relay may do: publish a row twice, late, or out of order.

No relay runs here: the test publishes the outbox rows itself, exactly as the relay would,
in the order it wants. A socket must still see every `seq` once, in order, and a `seq` that
never comes must end in a fresh snapshot after the grace, not in a silent hole.
"""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID

import pytest

from shared.auth import issue_token
from shared.db import UnitOfWorkFactory
from tests.support import tasks
from tests.support.processes import start_api
from tests.support.republish import notification_rows, publish
from tests.support.resources import SECRET, Resources
from tests.support.wait import wait_until
from tests.support.ws import Watch

pytestmark = pytest.mark.slow


@pytest.fixture(name="api", scope="module")
def api_fixture(resources: Resources) -> Iterator[str]:
    proc = start_api(resources.env(TASKRELAY_WS_GAP_GRACE_SECONDS="1.5"), name="api-gaps")
    try:
        yield f"http://127.0.0.1:{proc.port}"  # type: ignore[attr-defined]
    finally:
        proc.stop()


async def _changes(uow_factory: UnitOfWorkFactory, task_id: UUID, count: int) -> list[int]:
    keys = await tasks.pending_keys(uow_factory, task_id)
    return [await tasks.item_result(uow_factory, task_id, key, ok=True) for key in keys[:count]]


async def test_late_duplicate_and_missing_rows(
    api: str, resources: Resources, uow_factory: UnitOfWorkFactory
) -> None:
    task_id = await tasks.new_task(uow_factory, "gina", 8)
    await tasks.start(uow_factory, task_id)  # seq 1, never published: the snapshot covers it
    watch = await Watch.open(api, task_id, issue_token(SECRET, "gina", 600))
    [snapshot] = await watch.wait_frames(1)
    assert snapshot["seq"] == 1

    s2, s3 = await _changes(uow_factory, task_id, 2)
    rows = await notification_rows(uow_factory, task_id)
    await publish(resources.amqp_url, [rows[s3], rows[1], rows[s2]])  # late, stale, then the hole
    await watch.wait_seq(s3)
    assert watch.progress_seqs == [s2, s3]

    await publish(resources.amqp_url, [rows[1], rows[s2], rows[s3], rows[s2]])  # duplicates
    s4, s5, s6 = await _changes(uow_factory, task_id, 3)
    rows = await notification_rows(uow_factory, task_id)
    await publish(resources.amqp_url, [rows[s4], rows[s6]])  # s5 is never published

    async def resynced() -> bool:
        return len(watch.snapshots()) == 2

    await wait_until(resynced, within=10, what="a fresh snapshot after the hole's grace")
    assert watch.snapshots()[1]["seq"] == s6
    assert watch.snapshots()[1]["task"]["items"]["completed"] == 5

    await publish(resources.amqp_url, [rows[s5], rows[s6]])  # the hole fills too late: dropped
    [s7] = await _changes(uow_factory, task_id, 1)
    rows = await notification_rows(uow_factory, task_id)
    await publish(resources.amqp_url, [rows[s7], rows[s7]])
    [s8] = await _changes(uow_factory, task_id, 1)
    rows = await notification_rows(uow_factory, task_id)
    await publish(resources.amqp_url, [rows[s8]])  # one queue: the duplicates came before it
    await watch.wait_seq(s8)
    kinds = [(f["type"], f["seq"]) for f in watch.frames]
    assert kinds == [
        ("snapshot", 1),
        ("progress", s2),
        ("progress", s3),
        ("progress", s4),
        ("snapshot", s6),
        ("progress", s7),
        ("progress", s8),
    ]
    await watch.close()
