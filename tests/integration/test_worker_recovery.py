"""Lost jobs and duplicate messages, against the real PostgreSQL, RabbitMQ and Redis.

The watchdog's sweep, RQ's failure callback and the job consumer, each driven directly: a
"dead" job is a lease nobody renews; messages are real AMQP deliveries; jobs are real RQ jobs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import aio_pika
import redis
from rq import Queue
from sqlalchemy import select, update

from services.worker.consumer import JobConsumer
from services.worker.jobs import JobQueue, job_id_for
from shared.content import ContentRequest
from shared.db import UnitOfWorkFactory
from shared.db.tables import job_inbox, task_leases
from shared.db.work import InboxRepository, LeaseRepository, WorkItemRepository
from shared.domain import ItemKey, Status
from shared.service.generation import ContentJob, Stop
from shared.service.recovery import fail_for_job, sweep_lapsed_leases
from shared.service.tasks import NewTask, cancel_task, create_task
from shared.service.transitions import transition
from shared.settings import Settings
from shared.topology import DEAD_JOB_QUEUE
from tests.support.resources import Resources
from tests.support.wait import wait_until
from tests.support.worker import outbox_payloads, task_row

OWNER = "recovery-tests"
MAX_RESUMES = 3


async def new_task(uows: UnitOfWorkFactory, concepts: tuple[str, ...] = ("a", "b", "c")) -> UUID:
    new = NewTask(f"roadmap-{uuid4().hex[:6]}", [(c, c.upper()) for c in concepts], ["quiz"])
    async with uows() as uow:
        view = await create_task(uow, OWNER, new)
        await uow.commit()
    return UUID(view["task_id"])


async def start_dying_job(uows: UnitOfWorkFactory, task_id: UUID, holder: str) -> None:
    """What a job does at its start, with a lease so short that it lapses at once."""
    async with uows() as uow:
        state = await uow.tasks.lock(task_id)
        assert state is not None
        assert await LeaseRepository(uow.connection).acquire(task_id, holder, 0.01)
        if state.status is Status.PENDING:
            await transition(uow, state, Status.PROCESSING, step="started", message="go")
        await uow.commit()


async def recover(uows: UnitOfWorkFactory, task_id: UUID) -> str:
    """Sweep until this task's lapsed lease is recovered; returns what was done."""

    async def swept() -> str | None:
        done = await sweep_lapsed_leases(uows, MAX_RESUMES)
        return next((r.action for r in done if r.task_id == task_id), None)

    return await wait_until(swept, within=10, what="the lapsed lease to be recovered")


async def job_payloads(uows: UnitOfWorkFactory, task_id: UUID) -> list[dict[str, Any]]:
    return await outbox_payloads(uows, task_id, "job")


async def test_a_lost_job_is_resumed_and_after_too_many_losses_the_task_fails(
    uow_factory: UnitOfWorkFactory,
) -> None:
    task_id = await new_task(uow_factory)
    for loss in range(1, MAX_RESUMES + 1):
        await start_dying_job(uow_factory, task_id, f"dead-{loss}")
        assert await recover(uow_factory, task_id) == "resumed"
        resume = (await job_payloads(uow_factory, task_id))[-1]
        assert resume["reason"] == "resume"
        assert [i["concept_id"] for i in resume["items"]] == ["a", "b", "c"]  # type: ignore[index]
        assert (await task_row(uow_factory, task_id)).status == "processing"

    await start_dying_job(uow_factory, task_id, "dead-last")
    assert await recover(uow_factory, task_id) == "failed"

    row = await task_row(uow_factory, task_id)
    assert row.status == "failed"
    assert "lost 4 times" in row.error_message
    assert "dead-last" in row.error_message
    async with uow_factory() as uow:
        query = select(task_leases.c.holder, task_leases.c.recoveries).where(
            task_leases.c.task_id == task_id
        )
        assert tuple((await uow.connection.execute(query)).one()) == (None, 0)


async def test_a_lost_job_with_nothing_left_pending_gets_its_task_finished(
    uow_factory: UnitOfWorkFactory,
) -> None:
    task_id = await new_task(uow_factory, ("only",))
    await start_dying_job(uow_factory, task_id, "dead-after-last-item")
    async with uow_factory() as uow:
        items = WorkItemRepository(uow.connection)
        await items.store_result(
            task_id, ItemKey("only", "quiz"), content="x", error=None, now=datetime.now(UTC)
        )
        await uow.commit()

    assert await recover(uow_factory, task_id) == "finished"
    assert (await task_row(uow_factory, task_id)).status == "completed"


async def test_a_lost_job_of_a_cancelled_task_only_gives_the_lease_back(
    uow_factory: UnitOfWorkFactory,
) -> None:
    task_id = await new_task(uow_factory)
    await start_dying_job(uow_factory, task_id, "dead-cancelled")
    async with uow_factory() as uow:
        await cancel_task(uow, OWNER, task_id)
        await uow.commit()
    jobs_before = len(await job_payloads(uow_factory, task_id))

    assert await recover(uow_factory, task_id) == "released"
    assert (await task_row(uow_factory, task_id)).status == "cancelled"
    assert len(await job_payloads(uow_factory, task_id)) == jobs_before


async def test_the_failure_callback_fails_only_a_task_its_job_still_holds(
    uow_factory: UnitOfWorkFactory,
) -> None:
    task_id = await new_task(uow_factory)
    await start_dying_job(uow_factory, task_id, "job-that-raised")

    assert not await fail_for_job(uow_factory, task_id, "some-other-job", "boom")
    assert (await task_row(uow_factory, task_id)).status == "processing"
    assert await fail_for_job(uow_factory, task_id, "job-that-raised", "database went away")

    row = await task_row(uow_factory, task_id)
    assert (row.status, row.error_message) == (
        "failed",
        "Content generation failed: database went away",
    )


async def test_the_consumer_enqueues_each_message_once_and_dead_letters_the_rest(
    resources: Resources, settings: Settings, uow_factory: UnitOfWorkFactory
) -> None:
    queue_name = f"test-consumer-{uuid4().hex[:8]}"
    local = dataclasses.replace(
        settings, worker=dataclasses.replace(settings.worker, queue_name=queue_name)
    )
    client = redis.Redis.from_url(resources.redis_url)
    connection = await aio_pika.connect_robust(resources.amqp_url)
    consumer = JobConsumer(uow_factory, JobQueue(client, local), prefetch=4)
    try:
        await consumer.start(await connection.channel())
        task_id = await new_task(uow_factory)
        message_id = uuid4()
        body = json.dumps({"task_id": str(task_id), "job": "generate_content", "items": []})
        channel = await connection.channel()
        exchange = await channel.get_exchange("taskrelay")
        for _ in range(3):  # the first delivery and two duplicates
            await exchange.publish(
                aio_pika.Message(body.encode(), message_id=str(message_id)),
                routing_key="job.generate_content",
            )
        garbage_id = str(uuid4())
        await exchange.publish(
            aio_pika.Message(b"not json", message_id=garbage_id), routing_key="job.x"
        )

        async def inbox_rows() -> int:
            async with uow_factory() as uow:
                query = select(job_inbox.c.job_id).where(job_inbox.c.message_id == message_id)
                return len(list(await uow.connection.execute(query)))

        await wait_until(inbox_rows, within=10, what="the inbox record")
        dead = await channel.get_queue(DEAD_JOB_QUEUE)

        async def dead_lettered() -> bool:
            while (message := await dead.get(no_ack=True, fail=False)) is not None:
                if message.message_id == garbage_id:
                    return True
            return False

        await wait_until(dead_lettered, within=10, interval=0.1, what="the dead letter")
        await consumer.stop(drain_seconds=5)
        rq_queue = Queue(queue_name, connection=client)
        assert rq_queue.job_ids == [job_id_for(message_id)]
        assert await inbox_rows() == 1
        job = rq_queue.fetch_job(job_id_for(message_id))
        assert job is not None
        assert job.kwargs == {"task_id": str(task_id)}
    finally:
        Queue(queue_name, connection=client).delete(delete_jobs=True)
        client.close()
        await connection.close()


async def test_a_long_item_keeps_its_lease_alive_through_the_heartbeat(
    uow_factory: UnitOfWorkFactory,
) -> None:
    task_id = await new_task(uow_factory, ("long", "short"))
    swept: list[str] = []

    async def generator(request: ContentRequest) -> str:
        if request.concept_id == "long":  # four lease lengths, while the watchdog sweeps
            for _ in range(8):
                await asyncio.sleep(0.25)
                done = await sweep_lapsed_leases(uow_factory, MAX_RESUMES)
                swept.extend(r.action for r in done if r.task_id == task_id)
        return "ok"

    job = ContentJob(
        uow_factory,
        generator,
        task_id=task_id,
        holder="slow-job",
        item_timeout=10,
        lease_seconds=0.5,
    )
    outcome = await job.run()

    assert swept == []
    assert outcome.stop is Stop.FINISHED
    assert outcome.generated == 2


async def test_a_job_whose_lease_was_taken_stops_after_recording_its_item(
    uow_factory: UnitOfWorkFactory,
) -> None:
    task_id = await new_task(uow_factory, ("first", "second", "third"))

    async def generator(request: ContentRequest) -> str:
        if request.concept_id == "second":  # what the watchdog does to a job it thinks is lost
            async with uow_factory() as uow:
                await uow.connection.execute(
                    update(task_leases)
                    .where(task_leases.c.task_id == task_id)
                    .values(holder="resumed-job")
                )
                await uow.commit()
        return "ok"

    job = ContentJob(
        uow_factory,
        generator,
        task_id=task_id,
        holder="stale-job",
        item_timeout=10,
        lease_seconds=30,
    )
    outcome = await job.run()

    assert outcome.stop is Stop.LEASE_LOST
    assert outcome.generated == 2  # "second" was still pending: its result is kept
    assert (await task_row(uow_factory, task_id)).status == "processing"


async def test_the_inbox_forgets_only_message_ids_older_than_its_retention(
    uow_factory: UnitOfWorkFactory,
) -> None:
    old, recent, task_id = uuid4(), uuid4(), uuid4()
    async with uow_factory() as uow:
        inbox = InboxRepository(uow.connection)
        await inbox.record(old, task_id, "job-old")
        await inbox.record(recent, task_id, "job-recent")
        await uow.connection.execute(
            update(job_inbox)
            .where(job_inbox.c.message_id == old)
            .values(received_at=datetime.now(UTC) - timedelta(days=8))
        )
        await uow.commit()

    async with uow_factory() as uow:
        inbox = InboxRepository(uow.connection)
        assert await inbox.purge(older_than_seconds=7 * 24 * 3600) >= 1
        await uow.commit()
        assert not await inbox.seen(old)
        assert await inbox.seen(recent)
