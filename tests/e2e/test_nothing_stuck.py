"""Nothing stays stuck (protocol §8a): real faults on servers of the test's own, real processes.

Each test runs the api, relay and worker as an operator would, on a private PostgreSQL or Redis
that it stops, restarts or empties while tasks generate, and then waits for every task to
finish by itself: no click, no restart of a taskrelay process (except where a worker is
SIGKILLed on purpose). The counting generator records every call in a Redis the fault does not
touch, so the test knows how often each item was generated. Figures (time from the fault's
end to the last task done, items generated twice) are printed for docs/worker.md.
"""

from __future__ import annotations

import re
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from typing import Any
from uuid import UUID

import aio_pika
import httpx
import pytest

from harness import generators
from harness import resources as res
from harness.processes import Process, free_port, start_api
from harness.relay import start_relay
from harness.resources import Resources
from harness.servers import PrivatePostgres, PrivateRedis
from harness.system import TOKEN, TYPES, System, fault_env, running
from harness.wait import wait_until
from harness.worker import log_lines, start_worker, task_row
from harness.ws import Watch
from shared.adapters.postgres import UnitOfWorkFactory
from shared.adapters.rabbitmq.topology import JOB_QUEUE
from shared.config.settings import DatabaseSettings
from shared.domain import FINAL

pytestmark = pytest.mark.slow


async def watch_all(system: System, ids: list[UUID]) -> list[Watch]:
    return [await Watch.open(system.base_url, task_id, TOKEN) for task_id in ids]


async def check_watchers(watchers: list[Watch], rows: dict[UUID, Any]) -> None:
    """Every watcher ends on the database's final seq and status, with no gap and no repeat."""
    for watch, (task_id, row) in zip(watchers, rows.items(), strict=True):
        await watch.wait_seq(row.seq, within=60)
        snapshot = watch.snapshots()[0]
        assert watch.progress_seqs == list(range(snapshot["seq"] + 1, row.seq + 1)), task_id
        last = watch.frames[-1]
        assert (last["seq"], last.get("status", last.get("task", {}).get("status"))) == (
            row.seq,
            row.status,
        )
        await watch.close()


def twice(counts_url: str, ids: list[UUID], items_per_task: int) -> int:
    """Items generated twice over all tasks; fails if any was generated more, or never."""
    doubled = 0
    for task_id in ids:
        calls = generators.calls(counts_url, task_id)
        assert len(calls) == items_per_task, (task_id, calls)
        assert max(calls.values()) <= 2, (task_id, calls)
        doubled += sum(1 for n in calls.values() if n == 2)
    return doubled


async def progress(system: System, ids: list[UUID], at_least: int) -> None:
    async def enough() -> bool:
        return await system.completed_items(ids) >= at_least

    await wait_until(enough, within=60, interval=0.2, what=f"{at_least} items completed")


async def answers_503_while_down(system: System, task_id: UUID) -> None:
    """An API request during the outage: 503 with Retry-After, never a 500."""
    answer = await system.client.get(f"/api/v1/tasks/{task_id}")
    assert answer.status_code == 503, answer.text
    assert answer.headers.get("retry-after")


@pytest.fixture(name="counts_url")
def counts_url_fixture() -> Iterator[str]:
    """A Redis database on the shared server for the generator's counts."""
    owner = res.run_id()
    db = res.claim_redis_db(owner)
    yield f"{res.REDIS_BASE}/{db}"
    res.release_redis_db(db, owner)


async def test_postgresql_stopped_twice_while_tasks_generate(
    private_postgres: PrivatePostgres,
) -> None:
    with res.isolated_on("stuck_pg", postgres=private_postgres) as resources:
        async with running(fault_env(resources)) as system:
            ids = await system.create(12, concepts=4)
            watchers = await watch_all(system, ids)
            for outage in (1, 2):
                await progress(system, ids, at_least=20 * outage)
                noticed = _logged_again(system.worker, "reconciler_paused")
                private_postgres.stop("fast" if outage == 1 else "immediate")
                await answers_503_while_down(system, ids[0])
                # The outage lasts until the worker has met it (its reconciler pauses).
                await wait_until(noticed, within=30, what="the worker to notice the outage")
                private_postgres.start()
            fault_ended = time.monotonic()
            rows = await system.all_final(ids, within=120)
            recovered_in = time.monotonic() - fault_ended
            assert {r.status for r in rows.values()} == {"completed"}
            await check_watchers(watchers, rows)
        doubled = twice(resources.redis_url, ids, 4 * len(TYPES))
    print(f"\nPostgreSQL stopped twice: last task done {recovered_in:.1f} s after; {doubled} twice")


async def test_redis_restarted_empty_while_tasks_generate(
    private_redis: PrivateRedis, counts_url: str
) -> None:
    with res.isolated_on("stuck_redis", redis=private_redis) as resources:
        env = fault_env(resources, TASKRELAY_TEST_COUNTS_URL=counts_url)
        async with running(env) as system:
            ids = await system.create(10, concepts=4)
            watchers = await watch_all(system, ids)
            await progress(system, ids, at_least=15)
            private_redis.restart()  # RQ's queues, registries and running jobs' records: gone
            fault_ended = time.monotonic()
            rows = await system.all_final(ids, within=120)
            recovered_in = time.monotonic() - fault_ended
            assert {r.status for r in rows.values()} == {"completed"}
            await check_watchers(watchers, rows)
    doubled = twice(counts_url, ids, 4 * len(TYPES))
    print(f"\nRedis restarted empty: last task done {recovered_in:.1f} s after; {doubled} twice")


async def test_a_worker_killed_while_the_database_is_down_is_replaced(
    private_postgres: PrivatePostgres,
) -> None:
    with res.isolated_on("stuck_kill", postgres=private_postgres) as resources:
        env = fault_env(resources)
        async with running(env) as system:
            ids = await system.create(10, concepts=4)
            await progress(system, ids, at_least=15)
            private_postgres.stop("immediate")
            system.worker.kill()  # SIGKILL; its RQ processes die with it
            private_postgres.start()
            fault_ended = time.monotonic()
            with start_worker(env, 2, name="worker-stuck-second"):
                rows = await system.all_final(ids, within=150)
            recovered_in = time.monotonic() - fault_ended
            assert {r.status for r in rows.values()} == {"completed"}
        doubled = twice(resources.redis_url, ids, 4 * len(TYPES))
    print(
        f"\nWorker SIGKILLed, DB down: last task done {recovered_in:.1f} s after; {doubled} twice"
    )


async def test_a_dead_lettered_job_message_still_gets_its_task_done() -> None:
    with res.isolated("stuck_dl") as resources:
        await _dead_letter_then_done(resources)


async def _dead_letter_then_done(resources: Resources) -> None:
    env = fault_env(resources)
    uow_factory = UnitOfWorkFactory(DatabaseSettings(url=env["DATABASE_URL"]), pool_size=2)
    with start_api(env, name="api-dead-letter") as api, start_relay(env, name="relay-dl"):
        headers = {"Authorization": f"Bearer {TOKEN}"}
        base_url = f"http://127.0.0.1:{api.port}"  # type: ignore[attr-defined]
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as client:
            body = {"roadmap_id": "dl", "concepts": [{"concept_id": "x", "title": "X"}]}
            answer = await client.post("/api/v1/tasks", json=body)
            task_id = UUID(answer.json()["task_id"])
        await dead_letter_next_job_message(resources.amqp_url)
        port = free_port()
        with start_worker(env, 1, name="worker-after-dead-letter", metrics_port=port):
            row = await wait_for_final(uow_factory, task_id, within=90)
            # The recovery is counted where an operator looks: the worker's /metrics.
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
                scraped = answer.read().decode()
    await uow_factory.close()
    assert row.status == "completed"
    recovered = re.findall(r"^taskrelay_worker_recovered_tasks_total\{.*\} (\S+)$", scraped, re.M)
    assert sum(float(count) for count in recovered) >= 1


async def dead_letter_next_job_message(amqp_url: str) -> None:
    """What the broker does to a message past its delivery limit: off to the dead letters."""
    connection = await aio_pika.connect_robust(amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.get_queue(JOB_QUEUE)

        async def taken() -> aio_pika.abc.AbstractIncomingMessage | None:
            return await queue.get(no_ack=False, fail=False)

        message = await wait_until(taken, within=30, what="the task's job message")
        await message.reject(requeue=False)
    finally:
        await connection.close()


async def wait_for_final(uow_factory: UnitOfWorkFactory, task_id: UUID, within: float) -> Any:
    async def final() -> Any:
        row = await task_row(uow_factory, task_id)
        return row if row.status in FINAL else None

    return await wait_until(final, within=within, interval=0.5, what="the task final")


async def test_a_job_whose_failure_callback_cannot_reach_the_database_still_ends(
    private_postgres: PrivatePostgres,
) -> None:
    """RQ kills the job at its timeout while PostgreSQL is down, so `on_job_failure` raises."""
    with res.isolated_on("stuck_callback", postgres=private_postgres) as resources:
        env = fault_env(
            resources,
            TASKRELAY_TEST_GENERATOR_DELAY="60",
            TASKRELAY_WORKER_JOB_TIMEOUT_SECONDS="4",
            TASKRELAY_WORKER_MAX_RECOVERIES="1",
        )
        async with running(env, processes=1) as system:
            (task_id,) = await system.create(1, concepts=1)

            async def generating() -> bool:
                return bool(generators.calls(resources.redis_url, task_id))

            await wait_until(generating, within=30, what="the first item to start")
            private_postgres.stop("immediate")
            await wait_until(
                lambda: _logged(system.worker, "content_job_raised"),
                within=30,
                what="RQ's timeout and the failure callback",
            )
            private_postgres.start()
            row = await wait_for_final(system.uow_factory, task_id, within=120)
    assert row.status == "failed"
    assert "Content generation" in row.error_message  # the job's timeout, or no progress
    print(f"\nFailure callback without a database: failed with {row.error_message!r}")


async def _logged(proc: Process, event: str) -> bool:
    return any(line.get("event") == event for line in log_lines(proc))


def _logged_again(proc: Process, event: str) -> Callable[[], Awaitable[bool]]:
    """A check that passes once `event` is logged more often than now."""

    def count() -> int:
        return sum(line.get("event") == event for line in log_lines(proc))

    before = count()

    async def check() -> bool:
        return count() > before

    return check
