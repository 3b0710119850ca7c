"""The gateway meets a notification shape it does not know (docs/protocol.md §11): it logs it and
skips it, sends no frame for it, and keeps delivering the next notification. A real API
process; the real notification is published by the relay's own publisher."""

from __future__ import annotations

import json

import aio_pika
import pytest

from harness.processes import Process
from harness.resources import SECRET, Resources
from harness.wait import wait_until
from harness.ws import Watch
from shared.adapters.postgres import UnitOfWorkFactory
from shared.service.auth import issue_token
from tests.support import tasks
from tests.support.republish import notification_rows, publish

pytestmark = pytest.mark.slow


async def test_an_unknown_version_is_skipped_and_the_next_one_delivered(
    session_api: Process, base_url: str, resources: Resources, uow_factory: UnitOfWorkFactory
) -> None:
    task_id = await tasks.new_task(uow_factory, "schema")
    watch = await Watch.open(base_url, task_id, issue_token(SECRET, "schema", 600))
    await watch.wait_frames(1)  # the snapshot: the task's routing key is bound
    # A newer relay's shape, claiming seq 1: were it read, the real seq 1 would be dropped.
    newer = {"task_id": str(task_id), "seq": 1, "step": "v2", "message": "from the future"}
    connection = await aio_pika.connect(resources.amqp_url)
    try:
        exchange = await (await connection.channel()).get_exchange("taskrelay")
        await exchange.publish(
            aio_pika.Message(
                json.dumps(newer).encode(),
                headers={"x-schema-version": 2, "x-task-id": str(task_id), "x-seq": 1},
            ),
            routing_key=f"notification.{task_id}",
        )
    finally:
        await connection.close()
    await wait_until(
        lambda: _logged(session_api, "gateway_unknown_schema"), within=10, what="the skip logged"
    )

    seq = await tasks.start(uow_factory, task_id)
    await publish(resources.amqp_url, [(await notification_rows(uow_factory, task_id))[seq]])
    await watch.wait_seq(seq)
    assert watch.progress_seqs == [seq] == [1]
    assert watch.frames[1]["step"] != "v2"
    assert session_api.alive()
    await watch.close()


async def _logged(proc: Process, event: str) -> bool:
    return f'"{event}"' in proc.output()
