"""Error texts are cut to 1,000 characters before they are stored or sent (docs/protocol.md §7).

A real relay, worker and API; the generator fails every item with a megabyte of exception text
(with a NUL in it, which PostgreSQL cannot store). The client watches the task's WebSocket and
reads the task over HTTP; the rows are read back from PostgreSQL. A job whose failure callback
gives a megabyte of reason fails its task with an `error_message` cut the same way.
"""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID

import httpx
import pytest

from harness import sql
from harness.processes import Process, start_api
from harness.relay import start_relay
from harness.resources import Resources
from harness.worker import start_worker
from harness.ws import Watch
from shared.adapters.postgres import UnitOfWorkFactory
from shared.domain import MAX_ERROR_CHARS
from shared.service.recovery import fail_for_job
from tests.e2e.conftest import auth
from tests.integration.test_worker_callbacks import running_task
from tests.support.worker import notifications, wait_for_status

pytestmark = pytest.mark.slow
OWNER = "error-texts"


@pytest.fixture(name="system", scope="module")
def system_fixture(resources: Resources) -> Iterator[str]:
    env = resources.env(TASKRELAY_CONTENT_GENERATOR="harness.generators:enormous_error")
    started: list[Process] = []
    try:
        started.append(start_relay(env, name="relay-error-texts"))
        started.append(start_worker(env, name="worker-error-texts"))
        api = start_api(env, name="api-error-texts")
        started.append(api)
        yield f"http://127.0.0.1:{api.port}"  # type: ignore[attr-defined]
    finally:
        for proc in reversed(started):
            proc.stop()


async def test_a_generator_error_of_a_megabyte_is_cut(
    system: str, uow_factory: UnitOfWorkFactory
) -> None:
    body = {"roadmap_id": "huge", "concepts": [{"concept_id": "c1", "title": "One"}]}
    async with httpx.AsyncClient(base_url=system, timeout=30) as http:
        created = await http.post("/api/v1/tasks", json=body, headers=auth(OWNER))
        assert created.status_code == 201, created.text
        task_id = created.json()["task_id"]
        watch = await Watch.open(system, task_id, auth(OWNER)["Authorization"].split()[1])
        final = await wait_for_status(uow_factory, UUID(task_id), within=120)
        assert final.status == "failed"
        await watch.wait_seq(final.seq, within=60)
        view = (await http.get(f"/api/v1/tasks/{task_id}", headers=auth(OWNER))).json()
        listed = (await http.get(f"/api/v1/tasks/{task_id}/items", headers=auth(OWNER))).json()
    await watch.close()

    errors = [f["data"]["error"] for f in watch.frames if "error" in f.get("data", {})]
    assert len(errors) == 3  # one per content type, each sent to the socket
    item_errors = [f["data"]["item"]["error"] for f in watch.frames if "item" in f.get("data", {})]
    assert item_errors == errors  # `data.item.error` carries the same cut text
    assert sorted(i["error"] for i in listed["items"]) == sorted(errors)
    for error in errors:
        assert len(error) == MAX_ERROR_CHARS
        assert error.startswith("c1 failed\ufffdEEE")
        assert error.endswith("…")
    query = "SELECT last_error FROM content_items WHERE task_id = $1"
    stored = await sql.fetch(uow_factory, query, UUID(task_id))
    assert sorted(row[0] for row in stored) == sorted(errors)
    assert all(
        len(n["data"].get("error", "")) <= MAX_ERROR_CHARS
        for n in await notifications(uow_factory, UUID(task_id))
    )
    assert view["status"] == "failed"


async def test_a_failure_reason_of_a_megabyte_is_cut(uow_factory: UnitOfWorkFactory) -> None:
    task_id = await running_task(uow_factory, "job-huge-reason")
    assert await fail_for_job(uow_factory, task_id, "job-huge-reason", "R" * 1_000_000)
    query = "SELECT error_message FROM roadmap_tasks WHERE task_id = $1"
    error_message = await sql.fetchval(uow_factory, query, task_id)
    assert len(error_message) == MAX_ERROR_CHARS
    assert error_message.startswith("Content generation failed: RRR")
    last = (await notifications(uow_factory, task_id))[-1]
    assert last["status"] == "failed"
    assert len(last["message"]) == MAX_ERROR_CHARS
