"""The worker when its links break: real sockets cut by a proxy between it and a dependency.

- PostgreSQL vanishes mid-job: the job waits for it with backoff, keeping the item it generated,
  and goes on when it is back; the task ends `completed` with every item generated once.
- RabbitMQ vanishes: the consumer reconnects by itself and takes the job messages published
  while it was away.
- Ctrl-C (SIGINT to the whole process group, as a terminal sends it): a clean exit, status 0.
- A database migrated before the worker's tables existed: one line asking for `migrate`.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from harness import generators
from harness import resources as res
from harness.processes import TASKRELAY, Process
from harness.relay import start_relay
from harness.resources import Resources
from harness.system import fault_env
from harness.wait import wait_until, wait_until_sync
from harness.worker import log_lines, process_alive, start_worker
from shared.adapters.postgres import UnitOfWorkFactory
from tests.support import tasks
from tests.support.proxy import TcpProxy
from tests.support.worker import item_counts, wait_for_status

pytestmark = pytest.mark.slow
OWNER = "worker-faults"


@pytest.fixture(name="relay", scope="module")
def relay_fixture(resources: Resources) -> Iterator[Process]:
    proc = start_relay(resources.env(), name="relay-for-worker-faults")
    yield proc
    proc.stop()


def through(url: str, proxy: TcpProxy) -> str:
    """The same URL, but to the proxy's port."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


def env_for(resources: Resources, **extra: str) -> dict[str, str]:
    return fault_env(resources, **{"TASKRELAY_TEST_GENERATOR_DELAY": "0", **extra})


async def test_the_database_lost_mid_job_then_back_the_task_still_completes(
    resources: Resources, uow_factory: UnitOfWorkFactory, relay: Process
) -> None:
    proxy = TcpProxy("127.0.0.1", 5432)
    concepts = [f"d{i:02d}" for i in range(20)]
    env = env_for(
        resources,
        DATABASE_URL=through(resources.database_url, proxy),
        TASKRELAY_TEST_GENERATOR_DELAY="0.2",
    )
    try:
        with start_worker(env, name="worker-db-cut") as worker:
            task_id = await tasks.new_task(uow_factory, OWNER, concepts)

            async def started() -> bool:
                return (await item_counts(uow_factory, task_id))["completed"] >= 4

            await wait_until(started, within=60, interval=0.1, what="4 items completed")
            proxy.cut()
            wait_until_sync(
                lambda: any(e.get("event") == "content_job_waiting" for e in log_lines(worker)),
                within=30,
                what="the job to wait for the lost database",
            )
            proxy.restore()
            row = await wait_for_status(uow_factory, task_id, within=120)
            assert row.status == "completed"
    finally:
        proxy.close()
    calls = generators.calls(resources.redis_url, task_id)
    assert set(calls) == {f"{c}/tutorial" for c in concepts}
    assert set(calls.values()) == {1}  # no process died: nothing generated twice


async def test_the_broker_lost_then_back_the_consumer_takes_what_was_published_meanwhile(
    resources: Resources, uow_factory: UnitOfWorkFactory, relay: Process
) -> None:
    proxy = TcpProxy("127.0.0.1", 5672)
    env = env_for(resources, AMQP_URL=through(resources.amqp_url, proxy))
    try:
        with start_worker(env, name="worker-amqp-cut"):
            before = await tasks.new_task(uow_factory, OWNER, ["b1", "b2"])
            assert (await wait_for_status(uow_factory, before)).status == "completed"
            proxy.cut()
            during = await tasks.new_task(uow_factory, OWNER, ["m1", "m2", "m3"])
            proxy.restore()
            row = await wait_for_status(uow_factory, during, within=60)
            assert row.status == "completed"
    finally:
        proxy.close()
    assert set(generators.calls(resources.redis_url, during).values()) == {1}


def test_ctrl_c_stops_the_worker_and_its_rq_processes_cleanly(resources: Resources) -> None:
    worker = start_worker(env_for(resources), processes=2, name="worker-ctrl-c")
    rq_pids = next(line["rq_pids"] for line in log_lines(worker) if "rq_pids" in line)
    for pid in [worker.pid, *rq_pids]:  # what a terminal does: SIGINT to every process of it
        os.kill(pid, signal.SIGINT)
    assert worker.popen.wait(30) == 0
    assert not any(process_alive(pid) for pid in rq_pids)  # type: ignore[union-attr]
    worker.stop()


async def test_a_database_without_the_worker_tables_ends_start_up_with_one_line(
    resources: Resources,
) -> None:
    with res.database("taskrelay_test_noworker") as url:
        env = env_for(resources, DATABASE_URL=url)
        res.migrate(env)
        conn = await asyncpg.connect(url)
        try:
            await conn.execute("DROP TABLE task_leases")
        finally:
            await conn.close()
        done = subprocess.run(
            [*TASKRELAY, "worker"], env=env, capture_output=True, text=True, timeout=60
        )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert "the worker's tables are missing. Run: taskrelay migrate" in done.stderr
