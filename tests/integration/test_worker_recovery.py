"""The reconciler, fencing and the job consumer, against the real PostgreSQL, RabbitMQ and Redis.

Each fault is made real where it can be: a "dead" job is a lease nobody renews and an RQ job
Redis does not know; a lost message is a published dispatch no worker took; a queued job is a
real RQ job. The reconciler's sweep is driven directly, with a short `stale_after`.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import aio_pika
import pytest
import redis
from rq import Queue
from rq.job import Job

from harness import sql
from harness.resources import Resources
from harness.wait import wait_until
from harness.worker import task_row
from services.worker.enqueue import job_id_for
from services.worker.jobs.generate import lease_keeper
from services.worker.reconciler import RqJobStates
from shared.adapters.postgres import UnitOfWorkFactory
from shared.adapters.rabbitmq.topology import DEAD_JOB_QUEUE
from shared.config.settings import Settings
from shared.domain import ItemKey
from shared.domain.content import ContentRequest
from shared.service.generation import ContentJob, Pace, Stop
from shared.service.recovery import Action, Reconciler
from shared.service.tasks import cancel_task
from tests.support import tasks
from tests.support.consumer import own_consumer
from tests.support.worker import notifications, outbox_payloads

OWNER = "recovery-tests"
MAX_RECOVERIES = 3
STALE_AFTER = 0.5

ALONE = Pace(in_line=False)
"""These tests run each job on its own, outside any line of waiting tasks."""


@pytest.fixture(name="rq_client")
def rq_client_fixture(resources: Resources) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(resources.redis_url)
    yield client
    client.close()


@pytest.fixture(name="reconciler")
def reconciler_fixture(uow_factory: UnitOfWorkFactory, rq_client: redis.Redis) -> Reconciler:
    return Reconciler(
        uow_factory,
        RqJobStates(rq_client),
        stale_after=STALE_AFTER,
        max_recoveries=MAX_RECOVERIES,
        quiet_seconds=0,
    )


async def new_task(
    uow_factory: UnitOfWorkFactory, concepts: tuple[str, ...] = ("a", "b", "c")
) -> UUID:
    return await tasks.new_task(uow_factory, OWNER, concepts, types=("quiz",))


async def publish_dispatches(
    uow_factory: UnitOfWorkFactory, task_id: UUID, ago: float = 60
) -> None:
    """What the relay does with the task's job rows (long ago, unless said otherwise)."""
    await sql.execute(
        uow_factory,
        "UPDATE outbox SET published_at = $2 WHERE task_id = $1 AND published_at IS NULL",
        task_id,
        datetime.now(UTC) - timedelta(seconds=ago),
    )


async def take_dispatch(uow_factory: UnitOfWorkFactory, task_id: UUID, job_id: str) -> None:
    """What the consumer does with the task's latest job message: record its RQ job."""
    rows = await outbox_payloads(uow_factory, task_id, "job")
    assert rows
    message_id = await sql.fetchval(
        uow_factory,
        "SELECT message_id FROM outbox WHERE task_id = $1 AND kind = 'job' "
        "ORDER BY id DESC LIMIT 1",
        task_id,
    )
    async with uow_factory() as uow:
        await uow.inbox.record(message_id, task_id, job_id)
        await uow.commit()


async def queued_job(
    uow_factory: UnitOfWorkFactory, rq_client: redis.Redis
) -> tuple[UUID, Queue, Job]:
    """A task whose dispatch the consumer turned into a real RQ job, still queued."""
    task_id = await new_task(uow_factory)
    await publish_dispatches(uow_factory, task_id)
    queue = Queue(f"test-reconcile-{uuid4().hex[:8]}", connection=rq_client)
    job = queue.enqueue_call("builtins.print", job_id=f"generate-{uuid4()}")
    await take_dispatch(uow_factory, task_id, job.id)
    return task_id, queue, job


async def start_dying_job(uow_factory: UnitOfWorkFactory, task_id: UUID, holder: str) -> None:
    """What a job does at its start, with a lease so short that it lapses at once."""
    await tasks.start(uow_factory, task_id, holder, lease=0.01)


async def recover(reconciler: Reconciler, task_id: UUID, healthy_for: float = 60) -> Action:
    """Sweep until this task is recovered; what was done."""

    async def swept() -> Action | None:
        done = await reconciler.sweep(healthy_for)
        return next((r.action for r in done if r.task_id == task_id), None)

    return await wait_until(swept, within=10, what="the task to be recovered")


async def swept_ids(reconciler: Reconciler, healthy_for: float = 60) -> set[UUID]:
    return {r.task_id for r in await reconciler.sweep(healthy_for)}


async def test_a_lost_job_is_resumed_and_after_too_many_recoveries_the_task_fails(
    uow_factory: UnitOfWorkFactory, reconciler: Reconciler
) -> None:
    task_id = await new_task(uow_factory)
    await publish_dispatches(uow_factory, task_id)
    for loss in range(1, MAX_RECOVERIES + 1):
        await start_dying_job(uow_factory, task_id, f"dead-{loss}")
        await take_dispatch(uow_factory, task_id, f"dead-{loss}")
        assert await recover(reconciler, task_id) is Action.RESUMED
        resume = (await outbox_payloads(uow_factory, task_id, "job"))[-1]
        assert resume["reason"] == "resume"
        assert [i["concept_id"] for i in resume["items"]] == ["a", "b", "c"]  # type: ignore[index]
        note = (await notifications(uow_factory, task_id))[-1]
        assert note["step"] == "content_generation_resumed"
        assert note["data"]["recovery"] == loss
        assert "dead-" in note["data"]["reason"]
        await publish_dispatches(uow_factory, task_id)

    await start_dying_job(uow_factory, task_id, "dead-last")
    assert await recover(reconciler, task_id) is Action.FAILED

    row = await task_row(uow_factory, task_id)
    assert row.status == "failed"
    assert "no progress after 3 recoveries" in row.error_message
    assert "dead-last" in row.error_message
    query = "SELECT holder, recoveries FROM task_leases WHERE task_id = $1"
    (lease,) = await sql.fetch(uow_factory, query, task_id)
    assert tuple(lease) == (None, 0)


async def test_a_lost_job_with_nothing_left_pending_gets_its_task_finished(
    uow_factory: UnitOfWorkFactory, reconciler: Reconciler
) -> None:
    task_id = await new_task(uow_factory, ("only",))
    await start_dying_job(uow_factory, task_id, "dead-after-last-item")
    async with uow_factory() as uow:  # the job stores its last item, then dies
        lease = await uow.leases.held_by(task_id, "dead-after-last-item")
        assert lease is not None
        await uow.items.store_result(
            lease,
            ItemKey("only", "quiz"),
            content="x",
            error=None,
            now=datetime.now(UTC),
            lease_seconds=0.01,
        )
        await uow.commit()

    assert await recover(reconciler, task_id) is Action.FINISHED
    assert (await task_row(uow_factory, task_id)).status == "completed"


async def test_a_cancelled_task_is_left_alone(
    uow_factory: UnitOfWorkFactory, reconciler: Reconciler
) -> None:
    task_id = await new_task(uow_factory)
    await start_dying_job(uow_factory, task_id, "dead-cancelled")
    async with uow_factory() as uow:
        await cancel_task(uow, OWNER, task_id)
        await uow.commit()
    jobs_before = len(await outbox_payloads(uow_factory, task_id, "job"))

    assert task_id not in await swept_ids(reconciler)
    assert (await task_row(uow_factory, task_id)).status == "cancelled"
    assert len(await outbox_payloads(uow_factory, task_id, "job")) == jobs_before


async def test_a_dispatch_in_the_outbox_or_just_published_is_live_work(
    uow_factory: UnitOfWorkFactory, reconciler: Reconciler
) -> None:
    task_id = await new_task(uow_factory)
    assert task_id not in await swept_ids(reconciler)  # the relay has not published it yet
    await publish_dispatches(uow_factory, task_id, ago=0)
    assert task_id not in await swept_ids(reconciler, healthy_for=60)  # on its way
    await publish_dispatches(uow_factory, task_id, ago=0)


async def test_a_job_message_nobody_took_gets_a_new_dispatch(
    uow_factory: UnitOfWorkFactory, reconciler: Reconciler
) -> None:
    task_id = await new_task(uow_factory)  # pending: its creation message was dead-lettered
    await publish_dispatches(uow_factory, task_id, ago=60)
    # The worker's dependencies came back a moment ago: the message may still be on its way.
    assert task_id not in await swept_ids(reconciler, healthy_for=0.0)

    assert await recover(reconciler, task_id) is Action.RESUMED
    jobs = await outbox_payloads(uow_factory, task_id, "job")
    assert [j["reason"] for j in jobs] == ["create", "resume"]
    row = await task_row(uow_factory, task_id)
    assert (row.status, row.seq) == ("pending", 1)


async def test_a_job_queued_in_rq_is_live_work_and_one_lost_from_redis_is_not(
    uow_factory: UnitOfWorkFactory, reconciler: Reconciler, rq_client: redis.Redis
) -> None:
    task_id, queue, _ = await queued_job(uow_factory, rq_client)

    assert task_id not in await swept_ids(reconciler)

    queue.delete(delete_jobs=True)  # what a Redis restarted empty does to it
    assert await recover(reconciler, task_id) is Action.RESUMED


async def test_a_started_job_gets_time_to_take_its_task_then_is_judged_lost(
    uow_factory: UnitOfWorkFactory, reconciler: Reconciler, rq_client: redis.Redis
) -> None:
    task_id, queue, job = await queued_job(uow_factory, rq_client)
    rq_client.hset(job.key, mapping={"status": "started", "started_at": _rq_time(time.time())})

    assert task_id not in await swept_ids(reconciler)  # started just now

    rq_client.hset(job.key, "started_at", _rq_time(time.time() - 60))  # ...and its worker died
    assert await recover(reconciler, task_id) is Action.RESUMED
    queue.delete(delete_jobs=True)


async def test_two_reconcilers_recover_a_task_once(
    uow_factory: UnitOfWorkFactory, reconciler: Reconciler, rq_client: redis.Redis
) -> None:
    many = [await new_task(uow_factory) for _ in range(10)]
    for task_id in many:
        await publish_dispatches(uow_factory, task_id)
        await start_dying_job(uow_factory, task_id, f"dead-{task_id}")
    other = Reconciler(
        uow_factory,
        RqJobStates(rq_client),
        stale_after=STALE_AFTER,
        max_recoveries=MAX_RECOVERIES,
        quiet_seconds=0,
    )
    await asyncio.sleep(0.05)  # the leases lapse

    first, second = await asyncio.gather(reconciler.sweep(60), other.sweep(60))

    recovered = [r.task_id for r in [*first, *second] if r.task_id in many]
    assert sorted(recovered) == sorted(many)  # each once, by one of the two
    for task_id in many:
        jobs = await outbox_payloads(uow_factory, task_id, "job")
        assert [j["reason"] for j in jobs] == ["create", "resume"]


async def test_a_job_whose_lease_was_taken_back_writes_nothing(
    uow_factory: UnitOfWorkFactory, reconciler: Reconciler
) -> None:
    task_id = await new_task(uow_factory, ("first", "second", "third"))

    taken_back: list[bool] = []

    async def generator(request: ContentRequest) -> str:
        if request.concept_id == "second" and not taken_back:  # judged lost meanwhile
            taken_back.append(True)
            await sql.execute(
                uow_factory, "UPDATE task_leases SET expires_at = now() - interval '1 minute'"
            )
            assert await recover(reconciler, task_id) is Action.RESUMED
        return "ok"

    job = ContentJob(
        uow_factory,
        generator,
        keep_lease=lease_keeper(uow_factory.database),
        task_id=task_id,
        holder="stale-job",
        item_timeout=10,
        lease_seconds=30,
        pace=ALONE,
    )
    outcome = await job.run()

    assert outcome.stop is Stop.LEASE_LOST
    assert outcome.generated == 1  # "second" was refused: the resumed job generates it
    async with uow_factory() as uow:
        items = uow.items
        assert [k.concept_id for k in await items.pending_keys(task_id)] == ["second", "third"]

    resumed = ContentJob(
        uow_factory,
        generator,
        keep_lease=lease_keeper(uow_factory.database),
        task_id=task_id,
        holder="resumed-job",
        item_timeout=10,
        lease_seconds=30,
        pace=ALONE,
    )
    outcome = await resumed.run()
    assert (outcome.stop, outcome.generated) == (Stop.FINISHED, 2)
    steps = [n["step"] for n in await notifications(uow_factory, task_id)]
    assert steps.count("content_item_completed") == 3  # each item recorded once


async def test_a_generator_that_blocks_the_event_loop_does_not_let_the_lease_lapse(
    uow_factory: UnitOfWorkFactory, settings: Settings
) -> None:
    task_id = await new_task(uow_factory, ("blocking", "after"))
    lapses: list[float] = []
    watching = threading.Event()

    def watch() -> None:  # another thread, another loop: the job's loop is blocked
        async def check() -> None:
            import asyncpg

            conn = await asyncpg.connect(settings.database.asyncpg_dsn)
            try:
                while not watching.is_set():
                    left = await conn.fetchval(
                        "SELECT extract(epoch FROM expires_at - now()) FROM task_leases "
                        "WHERE task_id = $1 AND holder IS NOT NULL",
                        task_id,
                    )
                    if left is not None and left < 0:
                        lapses.append(float(left))
                    await asyncio.sleep(0.05)
            finally:
                await conn.close()

        asyncio.run(check())

    async def generator(request: ContentRequest) -> str:
        if request.concept_id == "blocking":
            time.sleep(2.5)  # CPU-bound work inside `async def`: five lease lengths
        return "ok"

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        job = ContentJob(
            uow_factory,
            generator,
            keep_lease=lease_keeper(uow_factory.database),
            task_id=task_id,
            holder="blocking-job",
            item_timeout=10,
            lease_seconds=0.5,
            pace=ALONE,
        )
        outcome = await job.run()
    finally:
        watching.set()
        watcher.join()

    assert lapses == []
    assert (outcome.stop, outcome.generated) == (Stop.FINISHED, 2)


async def test_the_consumer_enqueues_each_message_once_and_dead_letters_the_rest(
    resources: Resources, settings: Settings, uow_factory: UnitOfWorkFactory
) -> None:
    async with own_consumer(resources, settings, uow_factory) as own:
        connection, consumer = own.connection, own.consumer
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
            query = "SELECT count(*) FROM job_inbox WHERE message_id = $1"
            return int(await sql.fetchval(uow_factory, query, message_id))

        await wait_until(inbox_rows, within=10, what="the inbox record")
        dead = await channel.get_queue(DEAD_JOB_QUEUE)

        async def dead_lettered() -> bool:
            while (message := await dead.get(no_ack=True, fail=False)) is not None:
                if message.message_id == garbage_id:
                    return True
            return False

        await wait_until(dead_lettered, within=10, interval=0.1, what="the dead letter")
        await consumer.stop(drain_seconds=5)
        rq_queue = own.rq_queue
        assert rq_queue.job_ids == [job_id_for(message_id)]
        assert await inbox_rows() == 1
        job = rq_queue.fetch_job(job_id_for(message_id))
        assert job is not None
        assert job.kwargs == {"task_id": str(task_id)}


async def test_the_inbox_forgets_only_message_ids_older_than_its_retention(
    uow_factory: UnitOfWorkFactory,
) -> None:
    old, recent, task_id = uuid4(), uuid4(), uuid4()
    async with uow_factory() as uow:
        inbox = uow.inbox
        await inbox.record(old, task_id, "job-old")
        await inbox.record(recent, task_id, "job-recent")
        await uow.commit()
    await sql.execute(
        uow_factory,
        "UPDATE job_inbox SET received_at = $2 WHERE message_id = $1",
        old,
        datetime.now(UTC) - timedelta(days=8),
    )

    async with uow_factory() as uow:
        inbox = uow.inbox
        assert await inbox.purge(older_than_seconds=7 * 24 * 3600) >= 1
        await uow.commit()
        assert not await inbox.seen(old)
        assert await inbox.seen(recent)


def _rq_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
