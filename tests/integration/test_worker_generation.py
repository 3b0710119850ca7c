"""The worker's job against the real PostgreSQL: one transaction per item, once in effect.

`ContentJob` runs in-process with generators passed to its constructor (the seam the worker
fills from TASKRELAY_CONTENT_GENERATOR); tasks are created, cancelled and retried through the
same service functions the API calls.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from typing import Any
from uuid import UUID, uuid4

from harness import sql
from harness.worker import task_row
from services.worker.jobs.generate import lease_keeper
from shared.adapters.postgres import UnitOfWorkFactory
from shared.config.settings import DEFAULT_GENERATOR
from shared.domain.content import ContentGenerator, ContentRequest, load_generator
from shared.service.generation import ContentJob, JobOutcome, Pace, Stop
from shared.service.tasks import cancel_task, retry_task
from tests.support import tasks
from tests.support.worker import item_statuses, notifications, outbox_payloads

OWNER = "worker-tests"

ALONE = Pace(in_line=False)
"""These tests run each job on its own, outside any line of waiting tasks."""


class Recorder:
    """A coroutine generator that remembers its calls; fails first tries of "fail" concepts."""

    def __init__(self, on_call: Callable[[ContentRequest], Any] | None = None) -> None:
        self.calls: list[ContentRequest] = []
        self._on_call = on_call

    async def __call__(self, request: ContentRequest) -> str:
        self.calls.append(request)
        if self._on_call is not None:
            await self._on_call(request)
        if "fail" in request.concept_id and request.attempt == 1:
            raise RuntimeError(f"model refused {request.concept_id}")
        return f"# {request.concept_title}"

    def per_item(self) -> Counter[str]:
        return Counter(f"{c.concept_id}/{c.content_type}" for c in self.calls)


async def new_task(uow_factory: UnitOfWorkFactory, concepts: list[str], types: list[str]) -> UUID:
    return await tasks.new_task(uow_factory, OWNER, concepts, types)


def seed_concepts() -> list[str]:
    """The seed's task: 21 concepts, 10 of which fail on their first attempt."""
    return [f"c{i:02d}-fail" if i % 2 else f"c{i:02d}" for i in range(21)]


async def run_job(
    uow_factory: UnitOfWorkFactory,
    task_id: UUID,
    generator: ContentGenerator,
    *,
    holder: str | None = None,
    item_timeout: float = 5.0,
    should_stop: Callable[[], bool] = lambda: False,
) -> JobOutcome:
    job = ContentJob(
        uow_factory,
        generator,
        keep_lease=lease_keeper(uow_factory.database),
        task_id=task_id,
        holder=holder or f"test-{uuid4()}",
        item_timeout=item_timeout,
        lease_seconds=30,
        pace=ALONE,
        should_stop=should_stop,
    )
    return await job.run()


async def test_the_seed_partial_failure_then_a_retry_completes(
    uow_factory: UnitOfWorkFactory,
) -> None:
    task_id = await new_task(uow_factory, seed_concepts(), ["tutorial"])
    generator = Recorder()

    first = await run_job(uow_factory, task_id, generator)

    row = await task_row(uow_factory, task_id)
    assert first.stop is Stop.FINISHED
    assert first.generated == 21
    assert row.status == "partial_failure"
    assert row.error_message == "10 of 21 content items failed"
    assert row.completed_at is not None
    last_item = [n for n in await notifications(uow_factory, task_id) if "item_status" in n["data"]]
    assert last_item[-1]["data"]["completed_items"] == 11
    assert last_item[-1]["data"]["failed_items"] == 10
    assert last_item[-1]["data"]["total_items"] == 21
    results = {(n["data"]["item"]["concept_id"], n["data"]["item"]["status"]) for n in last_item}
    assert results == {(c, "failed" if "fail" in c else "completed") for c in seed_concepts()}
    assert last_item[0]["data"]["item"] == {  # data.item (docs/protocol.md §7)
        "concept_id": "c00",
        "content_type": "tutorial",
        "status": "completed",
        "error": None,
    }
    assert last_item[1]["data"]["item"] == {
        "concept_id": "c01-fail",
        "content_type": "tutorial",
        "status": "failed",
        "error": "model refused c01-fail",
    }

    async with uow_factory() as uow:
        retried = await retry_task(uow, OWNER, task_id)
        await uow.commit()
    assert retried.total_items == 10
    second = await run_job(uow_factory, task_id, generator)

    row = await task_row(uow_factory, task_id)
    assert second.generated == 10
    assert (row.status, row.error_message, row.completed_at is not None) == (
        "completed",
        None,
        True,
    )
    counts = generator.per_item()
    assert {k: v for k, v in counts.items() if "fail" in k} == {
        f"{c}/tutorial": 2 for c in seed_concepts() if "fail" in c
    }
    assert all(v == 1 for k, v in counts.items() if "fail" not in k)
    frames = await notifications(uow_factory, task_id)
    assert frames[-2]["data"]["completed_items"] == 21  # the last item result, then the finish
    assert [f["seq"] for f in frames] == list(range(1, len(frames) + 1))


async def test_running_the_same_dispatch_again_generates_nothing(
    uow_factory: UnitOfWorkFactory,
) -> None:
    task_id = await new_task(uow_factory, ["a-fail", "b", "c"], ["quiz", "tutorial"])
    generator = Recorder()
    await run_job(uow_factory, task_id, generator, holder="job-1")
    seq_before = (await task_row(uow_factory, task_id)).seq

    again = await run_job(uow_factory, task_id, generator, holder="job-1")  # an RQ retry
    duplicate = await run_job(uow_factory, task_id, generator, holder="job-2")  # a duplicate

    assert again.stop is Stop.NOT_RUNNABLE
    assert duplicate.stop is Stop.NOT_RUNNABLE
    assert len(generator.calls) == 6
    assert (await task_row(uow_factory, task_id)).seq == seq_before


async def test_a_cancel_stops_the_job_at_the_next_item_boundary(
    uow_factory: UnitOfWorkFactory,
) -> None:
    concepts = [f"k{i}" for i in range(8)]
    task_id = await new_task(uow_factory, concepts, ["tutorial"])

    async def cancel_during_third(request: ContentRequest) -> None:
        if request.concept_id == "k2":
            async with uow_factory() as uow:
                await cancel_task(uow, OWNER, task_id)
                await uow.commit()

    generator = Recorder(cancel_during_third)
    outcome = await run_job(uow_factory, task_id, generator)

    assert outcome.stop is Stop.CANCELLED
    assert [c.concept_id for c in generator.calls] == ["k0", "k1", "k2"]
    row = await task_row(uow_factory, task_id)
    assert (row.status, row.error_message) == ("cancelled", "Task cancelled by user")
    statuses = await item_statuses(uow_factory, task_id)
    assert statuses["k2"] == "completed"  # the one in flight records its result
    last = (await notifications(uow_factory, task_id))[-1]
    assert (last["status"], last["data"]["completed_items"]) == ("cancelled", 3)

    async with uow_factory() as uow:
        await retry_task(uow, OWNER, task_id)
        await uow.commit()
    retry_generator = Recorder()
    await run_job(uow_factory, task_id, retry_generator)
    assert [c.concept_id for c in retry_generator.calls] == concepts[3:]
    assert (await task_row(uow_factory, task_id)).status == "completed"


async def test_a_second_job_leaves_a_held_task_to_its_holder(
    uow_factory: UnitOfWorkFactory,
) -> None:
    task_id = await new_task(uow_factory, ["x", "y", "z"], ["quiz"])
    release = asyncio.Event()
    entered = asyncio.Event()

    async def hold(request: ContentRequest) -> None:
        if request.concept_id == "x":
            entered.set()
            await release.wait()

    holder_job = asyncio.create_task(run_job(uow_factory, task_id, Recorder(hold)))
    await asyncio.wait_for(entered.wait(), 10)
    intruder = Recorder()
    outcome = await run_job(uow_factory, task_id, intruder)
    release.set()
    held = await holder_job

    assert outcome.stop is Stop.BUSY
    assert intruder.calls == []
    assert held.stop is Stop.FINISHED
    assert held.generated == 3


async def test_a_shutdown_hands_the_rest_back_through_the_outbox(
    uow_factory: UnitOfWorkFactory,
) -> None:
    task_id = await new_task(uow_factory, [f"h{i}" for i in range(5)], ["quiz"])
    generator = Recorder()

    outcome = await run_job(
        uow_factory, task_id, generator, should_stop=lambda: len(generator.calls) >= 2
    )

    assert outcome.stop is Stop.HANDED_BACK
    assert outcome.generated == 2
    assert (await task_row(uow_factory, task_id)).status == "processing"
    jobs = await outbox_payloads(uow_factory, task_id, "job")
    assert jobs[-1]["reason"] == "resume"
    assert [i["concept_id"] for i in jobs[-1]["items"]] == ["h2", "h3", "h4"]

    resumed = await run_job(uow_factory, task_id, generator)
    assert resumed.stop is Stop.FINISHED
    assert len(generator.calls) == 5


async def test_timeouts_and_bad_results_fail_only_their_item(
    uow_factory: UnitOfWorkFactory,
) -> None:
    task_id = await new_task(uow_factory, ["slow", "odd", "fine"], ["quiz"])

    async def generator(request: ContentRequest) -> Any:
        if request.concept_id == "slow":
            await asyncio.sleep(5)
        return 42 if request.concept_id == "odd" else "ok"

    await run_job(uow_factory, task_id, generator, item_timeout=0.3)

    query = "SELECT concept_id, last_error FROM content_items WHERE task_id = $1"
    errors = {
        r["concept_id"]: r["last_error"] for r in await sql.fetch(uow_factory, query, task_id)
    }
    assert errors["slow"] == "generation timed out after 0.3 s"
    assert errors["odd"] == "generator returned int, not str or dict"
    assert errors["fine"] is None
    query = "SELECT concept_id FROM content_items WHERE task_id = $1 AND content IS NULL"
    assert {r["concept_id"] for r in await sql.fetch(uow_factory, query, task_id)} == {
        "slow",
        "odd",
    }
    row = await task_row(uow_factory, task_id)
    assert (row.status, row.error_message) == ("partial_failure", "2 of 3 content items failed")


async def test_a_plain_function_generator_runs_and_its_content_is_stored(
    uow_factory: UnitOfWorkFactory,
) -> None:
    task_id = await new_task(uow_factory, ["p"], ["resources"])

    def generator(request: ContentRequest) -> dict[str, Any]:
        return {"title": request.concept_title, "attempt": request.attempt}

    await run_job(uow_factory, task_id, generator)

    query = "SELECT content, attempts FROM content_items WHERE task_id = $1"
    (stored,) = await sql.fetch(uow_factory, query, task_id)
    assert stored["content"] == {"title": "Title p", "attempt": 1}
    assert stored["attempts"] == 1


async def test_the_built_in_generator_writes_markdown_for_every_content_type(
    uow_factory: UnitOfWorkFactory,
) -> None:
    task_id = await new_task(uow_factory, ["graphs", "trees"], ["tutorial", "resources", "quiz"])

    outcome = await run_job(uow_factory, task_id, load_generator(DEFAULT_GENERATOR))

    assert outcome.stop is Stop.FINISHED
    query = "SELECT concept_id, content_type, content FROM content_items WHERE task_id = $1"
    rows = await sql.fetch(uow_factory, query, task_id)
    assert len(rows) == 6
    headings = {"tutorial": "# Title", "resources": "# Resources: Title", "quiz": "# Quiz: Title"}
    for row in rows:
        heading = headings[row["content_type"]]
        assert row["content"].startswith(f"{heading} {row['concept_id']}\n")
    assert (await task_row(uow_factory, task_id)).status == "completed"
