"""The relay's publisher against the real RabbitMQ: message properties, returns, oversized rows."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from uuid import UUID, uuid4

import pytest

from harness.resources import Resources
from harness.wait import wait_until
from services.relay.publisher import Publisher
from shared.adapters.postgres.outbox import OutboxRow
from tests.support.relay import Ledger

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _row(row_id: int, task_id: UUID, seq: int | None, **overrides: object) -> OutboxRow:
    kind = "notification" if seq is not None else "job"
    routing_key = f"notification.{task_id}" if seq is not None else "job.generate_content"
    payload = (
        {"task_id": str(task_id), "seq": seq} if seq is not None else {"task_id": str(task_id)}
    )
    fields: dict[str, object] = {
        "id": row_id,
        "message_id": uuid4(),
        "task_id": task_id,
        "kind": kind,
        "routing_key": routing_key,
        "payload": json.dumps(payload),
        "seq": seq,
        "traceparent": None,
        "attempts": 0,
        "committed_at": 1_764_000_000.123456,
    }
    fields.update(overrides)
    return OutboxRow(**fields)  # type: ignore[arg-type]


@pytest.fixture(name="publisher")
async def publisher_fixture(resources: Resources) -> AsyncIterator[Publisher]:
    publisher = Publisher(resources.amqp_url, timeout=5, max_message_bytes=4096, heartbeat=5)
    await publisher.connect()
    yield publisher
    await publisher.close()


async def test_messages_carry_the_contract_properties(
    resources: Resources, publisher: Publisher
) -> None:
    task_id = uuid4()
    ledger = await Ledger().open(resources.amqp_url, binding=f"notification.{task_id}")
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    rows = [_row(1, task_id, 1, traceparent=parent), _row(2, task_id, 2)]
    try:
        outcome = await publisher.publish(rows)
        assert outcome.confirmed == [1, 2]
        assert not outcome.failed
        assert outcome.lost is None
        await wait_until(lambda: _count(ledger, 2), what="both messages")
    finally:
        await ledger.close()
    first, second = ledger.deliveries
    # Every property and header, exactly: an outside consumer relies on each (docs/protocol.md §11).
    persistent = {"content_type": "application/json", "delivery_mode": 2}
    assert first.properties == {**persistent, "message_id": str(rows[0].message_id)}
    assert second.properties == {**persistent, "message_id": str(rows[1].message_id)}
    committed = round(rows[0].committed_at * 1_000_000)
    assert first.headers == {
        "x-task-id": str(task_id),
        "x-seq": 1,
        "x-schema-version": 1,
        "traceparent": parent,
        "x-committed-at-us": committed,
    }
    assert second.headers == {
        "x-task-id": str(task_id),
        "x-seq": 2,
        "x-schema-version": 1,
        "x-committed-at-us": committed,
    }
    for header in ("x-seq", "x-schema-version", "x-committed-at-us"):
        assert type(first.headers[header]) is int, header
    assert first.body == {"task_id": str(task_id), "seq": 1}
    assert [d.seq for d in ledger.deliveries] == [1, 2]


async def test_a_job_message_carries_the_schema_version_and_no_seq(
    resources: Resources, publisher: Publisher
) -> None:
    task_id = uuid4()
    ledger = await Ledger().open(resources.amqp_url, binding="job.#")
    row = _row(3, task_id, None)
    try:
        assert (await publisher.publish([row])).confirmed == [3]
        await wait_until(lambda: _job_of(ledger, task_id), what="the job message")
    finally:
        await ledger.close()
    (job,) = [d for d in ledger.deliveries if d.task_id == str(task_id)]
    assert job.routing_key == "job.generate_content"
    assert job.properties == {
        "content_type": "application/json",
        "delivery_mode": 2,
        "message_id": str(row.message_id),
    }
    assert job.headers == {
        "x-task-id": str(task_id),
        "x-schema-version": 1,
        "x-committed-at-us": round(row.committed_at * 1_000_000),
    }


async def test_unroutable_notification_counts_as_published(publisher: Publisher) -> None:
    outcome = await publisher.publish([_row(7, uuid4(), 1)])  # nobody is bound to this task
    assert outcome.unroutable == [7]
    assert outcome.confirmed == []
    assert not outcome.failed


async def test_job_reaches_the_work_queue(publisher: Publisher) -> None:
    outcome = await publisher.publish([_row(9, uuid4(), None)])
    assert outcome.confirmed == [9]


async def test_an_oversized_row_fails_alone_and_holds_back_its_task(
    publisher: Publisher, resources: Resources
) -> None:
    big_task, other_task = uuid4(), uuid4()
    ledger = await Ledger().open(resources.amqp_url, binding="notification.#")
    rows = [
        _row(1, big_task, 1, payload=json.dumps({"blob": "x" * 10_000})),
        _row(2, other_task, 1),
        _row(3, big_task, 2),
    ]
    try:
        outcome = await publisher.publish(rows)
        await wait_until(lambda: _count(ledger, 1), what="the other task's message")
    finally:
        await ledger.close()
    assert [row.id for row, _ in outcome.failed] == [1]
    assert "too large" in outcome.failed[0][1]
    assert outcome.held_back == [3]
    assert outcome.confirmed == [2]
    assert all(d.task_id != str(big_task) for d in ledger.deliveries)


async def _count(ledger: Ledger, wanted: int) -> bool:
    return len(ledger.deliveries) >= wanted


async def _job_of(ledger: Ledger, task_id: UUID) -> bool:
    return any(d.task_id == str(task_id) for d in ledger.deliveries)
