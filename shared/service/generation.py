"""Generating a task's content items: the body of the worker's RQ job.

A job holds the task's lease while it runs and works through the task's *pending* items in
order. Before each item (an item boundary) it checks, under the task row lock, that the task is
still `processing`, that the lease is still its own and that no shutdown was asked for; then it
calls the generator under a timeout; then ONE transaction stores the content or the error,
counts the attempt and emits the item's notification with counts over all of the task's items.
When nothing is pending, that same transaction moves the task to its final status.

Only pending items are generated, and a result is stored only on a still-pending item, so a
redelivered message, a duplicate job or an RQ retry never generates a finished item again; the
API's retry is what makes failed items pending again (with a new job dispatch).

Two rules keep a fault from costing work or doing it twice:
- a blink is not a failure: a step that finds PostgreSQL gone is tried again with backoff (for
  up to `outage_patience` seconds), and a generated result waits in memory until it is stored;
- fencing: the result is stored only if the lease still carries the generation this job took,
  checked in the same transaction, so a job whose lease was taken back writes nothing.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from typing import Any, TypeVar
from uuid import UUID

from shared.backoff import Backoff
from shared.content import ContentGenerator, ContentRequest
from shared.db.abstract import AbstractUnitOfWork
from shared.db.items import PendingItem
from shared.db.leases import Lease
from shared.db.uow import UnitOfWorkFactory
from shared.domain import JobDispatch, Status, TaskState, clip_error
from shared.errors import DependencyUnavailable
from shared.logging import get_logger
from shared.messaging import GENERATE_CONTENT
from shared.metrics import record_item
from shared.service.lease_keeper import LeaseKeeper
from shared.service.progress import ItemResult, finish_task, start_task, store_item_result

log = get_logger(__name__)

T = TypeVar("T")


class Stop(StrEnum):
    """Why a job stopped working on its task."""

    FINISHED = "finished"
    """Nothing left pending: the task got its final status."""
    CANCELLED = "cancelled"
    NOT_RUNNABLE = "not_runnable"
    """The task was not pending or processing (finished already, or a stale message)."""
    BUSY = "busy"
    """Another live job holds the task; it will generate every pending item."""
    HANDED_BACK = "handed_back"
    """Shutdown: the rest was written back to the outbox as a `resume` job dispatch."""
    LEASE_LOST = "lease_lost"
    """The reconciler took the task back (this job stopped renewing in time): fenced out."""
    NOT_FOUND = "not_found"


@dataclass(slots=True)
class JobOutcome:
    stop: Stop = Stop.NOT_FOUND
    generated: int = 0


class ContentJob:
    """One run over one task's pending items; build one per RQ job execution."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        generator: ContentGenerator,
        *,
        task_id: UUID,
        holder: str,
        item_timeout: float,
        lease_seconds: float,
        should_stop: Callable[[], bool] = lambda: False,
        outage_patience: float = 600.0,
    ) -> None:
        self._uow_factory = uow_factory
        """Concrete: the lease keeper's thread opens its own pool on the same database."""
        self._generator = generator
        self._task_id = task_id
        self._holder = holder
        """The RQ job id: the lease's owner, the same across an RQ retry of this job."""
        self._item_timeout = item_timeout
        self._lease_seconds = lease_seconds
        self._should_stop = should_stop
        self._outage_patience = outage_patience
        self._lease: Lease | None = None
        self._keeper: LeaseKeeper | None = None
        self._outcome = JobOutcome()
        self._roadmap_id = ""
        self._executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="generator")

    async def run(self) -> JobOutcome:
        try:
            item = await self._patiently(self._begin)
            while item is not None:
                if self._keeper is not None and self._keeper.lost:
                    self._outcome.stop = Stop.LEASE_LOST
                    break
                started, stored_before = time.monotonic(), self._outcome.generated
                result = await self._generate(item)
                item = await self._patiently(partial(self._record, item, result))
                if self._outcome.generated > stored_before:
                    record_item(failed=result.error is not None, seconds=time.monotonic() - started)
        finally:
            if self._keeper is not None:
                await asyncio.to_thread(self._keeper.stop)
            # A sync generator stuck past its timeout keeps its thread; the horse exits anyway.
            self._executor.shutdown(wait=False, cancel_futures=True)
        return self._outcome

    async def _patiently(self, step: Callable[[], Awaitable[T]]) -> T:
        """Run one transaction; while PostgreSQL is away, wait with backoff and run it again.

        Each step is safe to repeat: it re-reads what it decides on under the task row lock, and
        a result already stored is not stored twice.
        """
        backoff = Backoff(base=0.2, cap=5.0)
        deadline = time.monotonic() + self._outage_patience
        while True:
            try:
                return await step()
            except DependencyUnavailable as exc:
                if time.monotonic() >= deadline:
                    raise
                delay = backoff.next()
                log.warning("content_job_waiting", error=exc.reason, retry_in=round(delay, 2))
                await asyncio.sleep(delay)

    async def _begin(self) -> PendingItem | None:
        async with self._uow_factory() as uow:
            state = await uow.tasks.lock(self._task_id)
            if state is None:
                return None
            self._roadmap_id = state.roadmap_id
            if state.status not in (Status.PENDING, Status.PROCESSING):
                self._outcome.stop = Stop.NOT_RUNNABLE
                return None
            lease = await uow.leases.acquire(self._task_id, self._holder, self._lease_seconds)
            if lease is None:
                self._outcome.stop = Stop.BUSY
                return None
            if state.status is Status.PENDING:
                state = await start_task(uow, state)
            first = await uow.items.next_pending(self._task_id)
            item = await self._next_or_finish(uow, state, lease, first)
            await uow.commit()
        if item is not None:
            self._lease = lease
            database = self._uow_factory.database
            self._keeper = LeaseKeeper(database, lease, self._lease_seconds).start()
        return item

    async def _record(self, item: PendingItem, result: ItemResult) -> PendingItem | None:
        """ONE transaction: under the task row lock, the fencing check, the result, its
        attempt, its notification; then the next boundary."""
        assert self._lease is not None
        lease = self._lease
        async with self._uow_factory() as uow:
            # The fencing check is in the store's own statement: a lease taken back writes
            # nothing. Only a stored result is progress that clears the count of recoveries.
            recorded = await store_item_result(
                uow, lease, item, result, lease_seconds=self._lease_seconds
            )
            if recorded is None:
                self._outcome.stop = Stop.NOT_FOUND
                return None
            if recorded.fenced_out:
                self._outcome.stop = Stop.LEASE_LOST  # taken back: this job writes nothing
                return None
            state, following = recorded.state, None
            if state.status is Status.PROCESSING:
                following = await self._next_or_finish(uow, state, lease, recorded.following)
            else:
                await uow.leases.release(lease, keep_recoveries=False)
                cancelled = state.status is Status.CANCELLED
                self._outcome.stop = Stop.CANCELLED if cancelled else Stop.NOT_RUNNABLE
            await uow.commit()
        self._outcome.generated += int(recorded.stored)  # once committed, however often tried
        return following

    async def _next_or_finish(
        self, uow: AbstractUnitOfWork, state: TaskState, lease: Lease, following: PendingItem | None
    ) -> PendingItem | None:
        """The item boundary, under the task row lock: hand back, finish, or go on with
        `following`, the first pending item (read under this lock)."""
        leases, items = uow.leases, uow.items
        if self._should_stop():
            rest = await items.pending_keys(self._task_id)
            if rest:
                resume = JobDispatch(GENERATE_CONTENT, self._task_id, tuple(rest), "resume")
                await uow.outbox.add_job(resume)
            await leases.release(lease, keep_recoveries=True)
            self._outcome.stop = Stop.HANDED_BACK
            return None
        if following is None:
            await finish_task(uow, state)
            await leases.release(lease, keep_recoveries=False)
            self._outcome.stop = Stop.FINISHED
        return following

    async def _generate(self, item: PendingItem) -> ItemResult:
        request = ContentRequest(
            task_id=str(self._task_id),
            roadmap_id=self._roadmap_id,
            concept_id=item.key.concept_id,
            concept_title=item.concept_title,
            content_type=item.key.content_type,
            attempt=item.attempts + 1,
        )
        try:
            # asyncio.timeout, not wait_for: the call runs in this task, not in a new one per item.
            async with asyncio.timeout(self._item_timeout):
                content = await self._call(request)
        except TimeoutError:
            return ItemResult(error=f"generation timed out after {self._item_timeout:g} s")
        except Exception as exc:  # the generator's own failure: the item fails, the job goes on
            return ItemResult(error=clip_error(str(exc) or type(exc).__name__))
        return _checked(content)

    async def _call(self, request: ContentRequest) -> Any:
        if inspect.iscoroutinefunction(self._generator):
            return await self._generator(request)
        loop = asyncio.get_running_loop()
        result = await loop.run_in_executor(self._executor, self._generator, request)
        return await result if inspect.isawaitable(result) else result


def _checked(content: Any) -> ItemResult:
    """A str or JSON-able dict is content; anything else fails the item, saying why."""
    if not isinstance(content, str | dict):
        return ItemResult(error=f"generator returned {type(content).__name__}, not str or dict")
    try:
        json.dumps(content)
    except (TypeError, ValueError) as exc:
        return ItemResult(error=f"generator returned content that is not JSON: {exc}")
    return ItemResult(content=content)
