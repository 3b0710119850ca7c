"""A whole taskrelay system (api, relay, worker) for fault tests and the recovery benchmark.

`running(env)` starts the three processes as an operator would, with an HTTP client that holds
a token and a unit-of-work factory on the same database, and stops them all at the end.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx

from harness.client import create_through_api
from harness.processes import Process, start_api, start_together
from harness.relay import start_relay
from harness.resources import SECRET, Resources
from harness.wait import wait_until
from harness.worker import start_worker, task_row
from shared.adapters.postgres import UnitOfWorkFactory
from shared.config.settings import DatabaseSettings
from shared.domain import FINAL
from shared.service.auth import issue_token

OWNER = "nothing-stuck"
TOKEN = issue_token(SECRET, OWNER, 3600)
TYPES = ["tutorial", "quiz"]


SHORT_RECOVERY = {
    "TASKRELAY_WORKER_LEASE_SECONDS": "4",
    "TASKRELAY_WORKER_RECONCILE_INTERVAL_SECONDS": "0.5",
    "TASKRELAY_WORKER_STALE_AFTER_SECONDS": "3",
}
"""The worker's recovery timers in tests: a lost job is recovered in seconds, not a minute. The
lease is still renewed every third of it (1.3 s), so a loaded machine does not lapse it."""


def fault_env(resources: Resources, defaults: bool = False, **extra: str) -> dict[str, str]:
    """The counting generator (0.1 s an item) and short recovery timers (`SHORT_RECOVERY`);
    the rules are the defaults'.

    `defaults`: the worker's own defaults instead (lease 30 s, stale after 30 s, every 5 s).
    """
    settings = {
        "TASKRELAY_CONTENT_GENERATOR": "harness.generators:counting",
        "TASKRELAY_TEST_GENERATOR_DELAY": "0.1",
        **({} if defaults else SHORT_RECOVERY),
    }
    return resources.env(**{**settings, **extra})


@dataclass
class System:
    env: dict[str, str]
    api: Process
    relay: Process
    worker: Process
    client: httpx.AsyncClient
    uow_factory: UnitOfWorkFactory

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api.port}"  # type: ignore[attr-defined]

    async def create(self, count: int, concepts: int) -> list[UUID]:
        items = [{"concept_id": f"c{i}", "title": f"C{i}"} for i in range(concepts)]
        return [
            UUID(await create_through_api(self.base_url, TOKEN, items, TYPES, roadmap_id=f"s{n}"))
            for n in range(count)
        ]

    async def completed_items(self, ids: list[UUID]) -> int:
        total = 0
        for task_id in ids:
            answer = await self.client.get(f"/api/v1/tasks/{task_id}")
            total += answer.json()["items"]["completed"]
        return total

    async def all_final(self, ids: list[UUID], within: float) -> dict[UUID, Any]:
        async def final() -> dict[UUID, Any] | None:
            rows = {task_id: await task_row(self.uow_factory, task_id) for task_id in ids}
            return rows if all(r.status in FINAL for r in rows.values()) else None

        return await wait_until(final, within=within, interval=0.5, what="every task final")


@contextlib.asynccontextmanager
async def running(env: dict[str, str], processes: int = 2) -> AsyncIterator[System]:
    uow_factory = UnitOfWorkFactory(DatabaseSettings(url=env["DATABASE_URL"]), pool_size=2)
    with contextlib.ExitStack() as stack:
        api, relay, worker = start_together(
            lambda: start_api(env, name="api-stuck"),
            lambda: start_relay(env, name="relay-stuck"),
            lambda: start_worker(env, processes, name="worker-stuck"),
        )
        for proc in (api, relay, worker):  # stopped the other way round
            stack.callback(proc.stop)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        base_url = f"http://127.0.0.1:{api.port}"  # type: ignore[attr-defined]
        async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as client:
            try:
                yield System(env, api, relay, worker, client, uow_factory)
            finally:
                await uow_factory.close()
