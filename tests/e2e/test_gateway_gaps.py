"""The gateway against what a relay may do: publish a row twice, late, or out of order.

No relay runs here: the test publishes the outbox rows itself, exactly as the relay would,
in the order it wants. A socket must still see every `seq` once, in order, and a `seq` that
never comes must end in a fresh snapshot after the grace, not in a silent hole.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from uuid import UUID, uuid4

import pytest

from harness.processes import Process, start_api
from harness.resources import SECRET, Resources
from harness.wait import wait_until
from harness.ws import Watch
from shared.adapters.postgres import UnitOfWorkFactory
from shared.service.auth import issue_token
from tests.support import tasks
from tests.support.republish import notification_rows, publish

pytestmark = pytest.mark.slow


@pytest.fixture(name="api_process", scope="module")
def api_process_fixture(resources: Resources) -> Iterator[Process]:
    proc = start_api(resources.env(TASKRELAY_WS_GAP_GRACE_SECONDS="1.5"), name="api-gaps")
    try:
        yield proc
    finally:
        proc.stop()


@pytest.fixture(name="api", scope="module")
def api_fixture(api_process: Process) -> str:
    return f"http://127.0.0.1:{api_process.port}"  # type: ignore[attr-defined]


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


async def test_a_message_that_is_not_a_notification_is_logged_and_skipped(
    api: str, api_process: Process, resources: Resources, uow_factory: UnitOfWorkFactory
) -> None:
    """Another service may publish anything on `notification.<task_id>`: the gateway logs
    what it cannot read, with its message id, and the watchers see only real changes."""
    task_id = await tasks.new_task(uow_factory, "hugo", 4)
    await tasks.start(uow_factory, task_id)
    watch = await Watch.open(api, task_id, issue_token(SECRET, "hugo", 600))
    await watch.wait_frames(1)
    [s2] = await _changes(uow_factory, task_id, 1)
    real = (await notification_rows(uow_factory, task_id))[s2]
    not_json = dataclasses.replace(real, message_id=uuid4(), payload="{not json")
    no_seq = dataclasses.replace(real, message_id=uuid4(), payload='{"task_id": "x"}')
    await publish(resources.amqp_url, [not_json, no_seq, real])
    await watch.wait_seq(s2)
    assert [(f["type"], f["seq"]) for f in watch.frames] == [("snapshot", 1), ("progress", s2)]
    await watch.close()
    lines = [
        line for line in api_process.output().splitlines() if "gateway_bad_notification" in line
    ]
    assert any(str(not_json.message_id) in line for line in lines), lines
    assert any(str(no_seq.message_id) in line for line in lines), lines
