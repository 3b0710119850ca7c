"""The reconciler loop every `taskrelay worker` runs: no task stays without live work.

Every `reconcile_interval_seconds` it sweeps (`shared.service.recovery.Reconciler`) the tasks
that are `pending` or `processing` without a live lease, asks RQ about their jobs, and
recovers the ones whose work was lost. It sweeps only while this worker reaches PostgreSQL,
Redis and RabbitMQ, and counts how long they have answered (`healthy_for`), so work that could
not move during an outage is not judged lost for it. Many workers sweeping at once is safe:
each recovery takes the task's row lock with SKIP LOCKED and re-checks the lease. It also
forgets inbox entries older than `inbox_retention_seconds`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

import redis
from rq.job import Job
from rq.utils import utcparse

from shared.config.settings import WorkerSettings
from shared.observability.logging import get_logger
from shared.service.ports import AbstractUnitOfWorkFactory
from shared.service.recovery import JobState, JobStatus, Reconciler

log = get_logger(__name__)

PURGE_INTERVAL_SECONDS = 600.0
_WAITING = {"queued", "deferred", "scheduled", "created"}


class RqJobStates:
    """What RQ says of jobs, by id, in one Redis round trip (run in a thread: it blocks)."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    async def __call__(self, job_ids: Sequence[str]) -> Mapping[str, JobState]:
        return await asyncio.to_thread(self._fetch, job_ids)

    def _fetch(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        with self._client.pipeline(transaction=False) as pipe:
            for job_id in job_ids:
                pipe.hmget(Job.key_for(job_id), "status", "started_at")
            replies = pipe.execute()
        states = {}
        for job_id, (status, started_at) in zip(job_ids, replies, strict=True):
            if status is not None:
                states[job_id] = _state(status.decode(), started_at)
        return states


def _state(status: str, started_at: bytes | None) -> JobState:
    if status in _WAITING:
        return JobState(JobStatus.QUEUED)
    if status != "started":
        return JobState(JobStatus.ENDED)
    if not started_at:
        return JobState(JobStatus.STARTED, 0.0)
    started = utcparse(started_at.decode()).replace(tzinfo=UTC)
    return JobState(JobStatus.STARTED, (datetime.now(UTC) - started).total_seconds())


async def run_reconciler(
    uow_factory: AbstractUnitOfWorkFactory,
    client: redis.Redis,
    settings: WorkerSettings,
    broker_connected: Callable[[], bool],
    recovered_one: Callable[[str], None] = lambda _: None,
) -> None:
    """Sweep until cancelled; while a dependency is away, wait and count its return."""
    reconciler = Reconciler(
        uow_factory,
        RqJobStates(client),
        stale_after=settings.stale_after_seconds,
        max_recoveries=settings.max_recoveries,
        quiet_seconds=settings.reconcile_interval_seconds,
    )
    healthy_since: float | None = time.monotonic()
    last_purge = 0.0
    while True:
        try:
            if not broker_connected():
                raise ConnectionError("RabbitMQ is away")
            await asyncio.to_thread(client.ping)
            healthy_since = healthy_since or time.monotonic()
            recovered = await reconciler.sweep(time.monotonic() - healthy_since)
            if recovered:
                log.info("reconciler_recovered", tasks=len(recovered))
            for recovery in recovered:
                recovered_one(str(recovery.action))
            if time.monotonic() - last_purge > PURGE_INTERVAL_SECONDS:
                await _purge_inbox(uow_factory, settings.inbox_retention_seconds)
                last_purge = time.monotonic()
        except Exception as exc:  # a dependency is away: judge nothing until it is back
            if healthy_since is not None:
                log.warning("reconciler_paused", error=str(exc) or type(exc).__name__)
            healthy_since = None
        await asyncio.sleep(settings.reconcile_interval_seconds)


async def _purge_inbox(uow_factory: AbstractUnitOfWorkFactory, older_than: float) -> None:
    async with uow_factory() as uow:
        removed = await uow.inbox.purge(older_than)
        await uow.commit()
    if removed:
        log.info("job_inbox_purged", rows=removed)
