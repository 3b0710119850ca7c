"""Drive a running system over HTTP as its users do: make a task, wait for it to reach a status.

For tests and benchmarks that start a whole system; a test that needs a task in some state at the
database level uses `tests.support.tasks`, which goes through the product's services.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import httpx

from harness.wait import wait_until


async def create_through_api(
    api: str,
    token: str,
    concepts: list[dict[str, str]],
    types: Sequence[str] | None = None,
    *,
    roadmap_id: str = "rm-test",
    until: str | None = None,
    within: float = 60,
) -> str:
    """A task made by `POST /api/v1/tasks` of a running system at `api`; with `until`, once
    the system brought it to that status."""
    body: dict[str, Any] = {"roadmap_id": roadmap_id, "concepts": concepts}
    if types is not None:
        body["content_types"] = list(types)
    async with httpx.AsyncClient(base_url=api, headers=_bearer(token), timeout=30) as client:
        created = await client.post("/api/v1/tasks", json=body)
    assert created.status_code == 201, created.text
    task_id = str(created.json()["task_id"])
    if until is not None:
        await wait_for_status_through_api(api, token, task_id, until, within)
    return task_id


async def wait_for_status_through_api(
    api: str, token: str, task_id: str, status: str, within: float = 60
) -> None:
    """Poll `GET /api/v1/tasks/{task_id}` until the task has `status`."""
    async with httpx.AsyncClient(base_url=api, headers=_bearer(token), timeout=30) as client:

        async def reached() -> bool:
            answer = await client.get(f"/api/v1/tasks/{task_id}")
            return bool(answer.json()["status"] == status)

        await wait_until(reached, within=within, interval=0.2, what=f"the task to be {status}")


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
