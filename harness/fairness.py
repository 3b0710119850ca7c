"""The scenarios of protocol §8b against a running system, timed at a WebSocket as a user sees
them: for the e2e test (`tests/e2e/test_fairness.py`) and the benchmark (`bench/fairness.py`).

Every task is made through the API by a user of its own token, with the `paced` generator
(`harness.generators`): each item waits as long as the task's roadmap id says, using no
CPU, like a call to a remote model.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx

from harness import generators
from harness.client import create_through_api
from harness.resources import SECRET
from harness.wait import wait_until
from harness.ws import Watch
from shared.domain import FINAL
from shared.service.auth import issue_token

ITEM_STEPS = ("content_item_completed", "content_item_failed")


def token(user: str) -> str:
    return issue_token(SECRET, user, 3600)


@dataclass
class Timed:
    """One task as its user saw it: when it was asked for, and its frames as they came."""

    task_id: UUID
    user: str
    asked_at: float
    watch: Watch

    def _first(self, wanted: Any) -> float | None:
        for at, frame in zip(self.watch.arrivals, self.watch.frames, strict=True):
            if wanted(frame):
                return at - self.asked_at
        return None

    @property
    def first_item(self) -> float | None:
        """Seconds from the create to the first item's frame."""
        return self._first(lambda f: f.get("step") in ITEM_STEPS)

    @property
    def finished(self) -> float | None:
        """Seconds from the create to the frame of its final status."""
        return self._first(lambda f: f.get("status", f.get("task", {}).get("status")) in FINAL)

    async def wait_finished(self, within: float, status: str | None = None) -> float:
        """Seconds from the create to the frame of its final status (or of `status`)."""

        def reached(f: dict[str, Any]) -> bool:
            now = f["task"]["status"] if f["type"] == "snapshot" else f["status"]
            return bool(now in FINAL if status is None else now == status)

        async def done() -> float | None:
            return self._first(reached)

        return await wait_until(done, within=within, interval=0.02, what="the final frame")


async def ask(base_url: str, user: str, items: int, pace: float, tag: str = "t") -> Timed:
    """A task of `items` items, `pace` seconds each, for `user`, watched from its create."""
    concepts = [{"concept_id": f"{tag}{i:04d}", "title": f"Concept {i}"} for i in range(items)]
    asked_at = time.monotonic()
    task_id = await create_through_api(
        base_url, token(user), concepts, ["tutorial"], roadmap_id=f"paced-{pace:g}"
    )
    watch = await Watch.open(base_url, task_id, token(user))
    return Timed(UUID(task_id), user, asked_at, watch)


async def finish_all(tasks: list[Timed], within: float) -> None:
    for task in tasks:
        await task.wait_finished(within)
        await task.watch.close()


def generated_once(redis_url: str, tasks: list[Timed], items: dict[UUID, int]) -> bool:
    """Was every item of every task generated exactly once?"""
    for task in tasks:
        calls = generators.calls(redis_url, task.task_id)
        if len(calls) != items[task.task_id] or set(calls.values()) != {1}:
            return False
    return True


async def cancel_in_flight(base_url: str, user: str, items: int) -> tuple[Timed, int]:
    """A task of `items` items (1 s each) cancelled while they are all in flight, once they
    have all finished after the cancel: the task and the cancel's HTTP status."""
    task = await ask(base_url, user, items, 1.0, tag="race")
    auth = {"Authorization": f"Bearer {token(user)}"}
    async with httpx.AsyncClient(base_url=base_url, headers=auth, timeout=30) as client:

        async def in_flight() -> bool:
            return any(f.get("data", {}).get("in_flight") for f in task.watch.frames)

        await wait_until(in_flight, within=60, what="items in flight")
        cancelled = await client.post(f"/api/v1/tasks/{task.task_id}/cancel")

        async def all_done() -> bool:
            view = (await client.get(f"/api/v1/tasks/{task.task_id}")).json()
            return bool(view["items"]["pending"] == 0)

        await wait_until(all_done, within=30, what="the items in flight to finish")
    return task, cancelled.status_code


async def cancel_in_flight_then_retry(base_url: str, user: str, items: int) -> dict[str, Any]:
    """`cancel_in_flight`, then a retry: the retry's answer and the final frame's status."""
    task, cancel_status = await cancel_in_flight(base_url, user, items)
    auth = {"Authorization": f"Bearer {token(user)}"}
    async with httpx.AsyncClient(base_url=base_url, headers=auth, timeout=30) as client:
        retried = await client.post(f"/api/v1/tasks/{task.task_id}/retry")
        await task.wait_finished(30, status="completed")
        final = (await client.get(f"/api/v1/tasks/{task.task_id}")).json()
    await task.watch.close()
    return {
        "cancel_status": cancel_status,
        "retry_status": retried.status_code,
        "retry_total_items": retried.json().get("total_items"),
        "final_status": final["status"],
        "completed_items": final["items"]["completed"],
    }
