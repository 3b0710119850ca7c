"""Generation at the speed of the model, shared fairly (protocol §8b), through the real system.

An API, a relay and a worker with 2 RQ processes and its default pace (8 items in flight per
job, 2 s slices) on a database, vhost and Redis db of this module's own, with the `paced`
generator (each item waits like a model call, without CPU). The assertions are about order and
counts, which hold on a loaded machine; `bench/fairness.py` prints the times.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from uuid import UUID

import httpx
import pytest

from harness import fairness, generators
from harness.processes import free_port, start_api, start_together, stop_all
from harness.relay import start_relay
from harness.resources import Resources
from harness.wait import wait_until
from harness.worker import start_worker

pytestmark = pytest.mark.slow
ITEM_CONCURRENCY = 8
"""The worker's default (TASKRELAY_WORKER_ITEM_CONCURRENCY)."""


@pytest.fixture(name="system", scope="module")
def system_fixture(own: Resources) -> Iterator[tuple[str, int, Resources]]:
    env = own.env(
        TASKRELAY_CONTENT_GENERATOR="harness.generators:paced",
        TASKRELAY_API_RATE_LIMIT_PER_SECOND="0",
    )
    metrics_port = free_port()
    processes = start_together(
        lambda: start_api(env, name="api-fair"),
        lambda: start_relay(env, name="relay-fair"),
        lambda: start_worker(env, 2, name="worker-fair", metrics_port=metrics_port),
    )
    try:
        yield f"http://127.0.0.1:{processes[0].port}", metrics_port, own  # type: ignore[attr-defined]
    finally:
        stop_all(processes[::-1])


@contextlib.asynccontextmanager
async def client(url: str, user: str) -> AsyncIterator[httpx.AsyncClient]:
    auth = {"Authorization": f"Bearer {fairness.token(user)}"}
    async with httpx.AsyncClient(base_url=url, headers=auth, timeout=30) as http:
        yield http


def most_at_once(starts: list[float], seconds: float) -> int:
    """The most calls running together, each taken to last `seconds` from its start."""
    return max(sum(s <= t < s + seconds for s in starts) for t in starts)


async def test_a_task_generates_its_items_together(system: tuple[str, int, Resources]) -> None:
    url, _, own = system
    task = await fairness.ask(url, "together", 24, 0.5, tag="g")
    await task.wait_finished(60, status="completed")
    starts = [at for at, _ in generators.starts(own.redis_url, task.task_id)]
    assert len(starts) == 24
    assert most_at_once(starts, 0.5) == ITEM_CONCURRENCY
    in_flight = [
        f["data"]["in_flight"] for f in task.watch.frames if "in_flight" in f.get("data", {})
    ]
    assert len(in_flight[0]) == ITEM_CONCURRENCY  # the page learns which items run
    await task.watch.close()


async def test_a_newcomer_and_a_small_user_are_not_kept_behind_bulk_work(
    system: tuple[str, int, Resources],
) -> None:
    """FIFO would finish the newcomer's and user C's tasks after all of A's; fair turns finish
    them while A's work still runs, and hand A's tasks back between slices."""
    url, metrics_port, own = system
    items: dict[UUID, int] = {}
    bulk = []
    for n in range(4):
        bulk.append(await fairness.ask(url, "bulk", 160, 0.1, tag=f"a{n}-"))
        items[bulk[-1].task_id] = 160

    async def bulk_runs() -> bool:
        return any(t.first_item is not None for t in bulk)

    await wait_until(bulk_runs, within=30, what="the bulk user's first item")
    newcomer = await fairness.ask(url, "newcomer", 2, 0.1, tag="n")
    small = await fairness.ask(url, "small", 80, 0.1, tag="s")
    items.update({newcomer.task_id: 2, small.task_id: 80})
    async with client(url, "small") as http:
        view = (await http.get(f"/api/v1/tasks/{small.task_id}")).json()
    assert view["waiting_since"] is not None  # both processes hold A's tasks: it waits

    await newcomer.wait_finished(60, status="completed")
    assert newcomer.first_item is not None
    assert newcomer.first_item < 10  # docs/protocol.md §8b says 3 s; bench/fairness.py measures it
    assert sum(t.finished is None for t in bulk) >= 2
    await small.wait_finished(120, status="completed")
    assert sum(t.finished is None for t in bulk) >= 1
    await fairness.finish_all([*bulk, newcomer, small], 120)
    assert fairness.generated_once(own.redis_url, [*bulk, newcomer, small], items)
    async with client(url, "small") as http:
        view = (await http.get(f"/api/v1/tasks/{small.task_id}")).json()
    assert view["waiting_since"] is None

    scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    assert 'taskrelay_worker_turns_total{outcome="handed_back"}' in scraped
    assert "taskrelay_worker_task_wait_seconds_count" in scraped
    assert "taskrelay_worker_items_in_flight 0.0" in scraped


async def test_a_cancel_that_lost_the_race_is_finished_by_a_retry(
    system: tuple[str, int, Resources],
) -> None:
    url, _, _ = system
    race = await fairness.cancel_in_flight_then_retry(url, "racer", ITEM_CONCURRENCY)
    assert race == {
        "cancel_status": 200,
        "retry_status": 202,
        "retry_total_items": 0,
        "final_status": "completed",
        "completed_items": ITEM_CONCURRENCY,
    }
