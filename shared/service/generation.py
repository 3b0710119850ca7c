"""Generating a task's content items: the body of the worker's RQ job.

A job first decides whether it is its task's turn (capacity is shared round-robin over users,
protocol §8b, `shared.adapters.postgres.turns`): if another user waits whose turn is older, the job
gives its turn away by writing a new dispatch for its task through the outbox, and ends. Otherwise
it takes the task's lease and generates the task's *pending* items, up to `item_concurrency` at
once. Each result is stored in ONE transaction with its notification (`seq` strictly rising,
the results written one at a time); before an item starts, the last transaction saw the task
still `processing` under its row lock with the lease still this job's (the item boundary). A
job works on its task for at most `slice_seconds` while other tasks wait for a worker: then it
starts nothing more, lets the items in flight finish, and hands the rest back through the
outbox (as on shutdown). When nothing is pending, the last result's transaction moves the task
to its final status.

Only pending items are generated, and a result is stored only on a still-pending item, so a
redelivered message, a duplicate job or an RQ retry never generates a finished item again; the
API's retry is what makes failed items pending again (with a new job dispatch).

Two rules keep a fault from costing work or doing it twice:
- a blink is not a failure: a step that finds PostgreSQL gone is tried again with backoff (for
  up to `outage_patience` seconds), and generated results wait in memory until they are stored;
- fencing: a result is stored only if the lease still carries the generation this job took,
  checked in the same transaction, so a job whose lease was taken back writes nothing.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import partial
from typing import Any, TypeVar
from uuid import UUID

from shared.domain import JobDispatch, Status, TaskState, clip_error
from shared.domain.backoff import Backoff
from shared.domain.content import ContentGenerator, ContentRequest, Generated
from shared.domain.messages import GENERATE_CONTENT
from shared.domain.records import Lease, PendingItem
from shared.errors import DependencyUnavailable
from shared.observability.logging import get_logger
from shared.observability.metrics import items_in_flight, record_item, record_turn_end, record_wait
from shared.observability.spans import item_span
from shared.service.lease_keeper import Heartbeat, KeepLease
from shared.service.ports import AbstractUnitOfWork, AbstractUnitOfWorkFactory
from shared.service.progress import (
    ItemResult,
    finish_task,
    hand_back,
    resume_turn,
    start_task,
    store_item_result,
)

log = get_logger(__name__)

T = TypeVar("T")

MAX_DEFERRALS = 8
"""Turns a task's jobs give away in a row before one runs it whatever the line says, so a
fairer task whose job was lost (until the reconciler gives it a new one) holds nobody off."""
RECHECK_SECONDS = 0.5
"""Past its slice with nobody else waiting, a job looks again this often."""


class Stop(StrEnum):
    """Why a job stopped working on its task."""

    FINISHED = "finished"
    """Nothing left pending: the task got its final status."""
    CANCELLED = "cancelled"
    NOT_RUNNABLE = "not_runnable"
    """The task was not pending or processing (finished already, or a stale message)."""
    BUSY = "busy"
    """Another live job holds the task; it will generate every pending item."""
    DEFERRED = "deferred"
    """Not its user's turn: the task went back in line (a new dispatch), nothing generated."""
    HANDED_BACK = "handed_back"
    """Its slice ended while others waited, or a shutdown: the rest went back in line as a
    `resume` job dispatch through the outbox."""
    LEASE_LOST = "lease_lost"
    """The reconciler took the task back (this job stopped renewing in time): fenced out."""
    NOT_FOUND = "not_found"


@dataclass(slots=True)
class JobOutcome:
    stop: Stop = Stop.NOT_FOUND
    generated: int = 0


@dataclass(frozen=True, slots=True)
class Pace:
    """How a job shares its worker (docs/protocol.md §8b)."""

    item_concurrency: int = 1
    """Items generated at once."""
    slice_seconds: float = 2.0
    """How long the job keeps its task while other tasks wait for a worker."""
    in_line: bool = True
    """False: the job ignores the line, neither giving its turn away nor handing back for
    others (a job run on its own, outside a deployment's workers, as tests run it)."""


class ContentJob:
    """One turn on one task: its pending items, until done, cancelled, or its slice is over.
    Build one per RQ job execution."""

    def __init__(
        self,
        uow_factory: AbstractUnitOfWorkFactory,
        generator: ContentGenerator,
        *,
        keep_lease: KeepLease,
        task_id: UUID,
        holder: str,
        item_timeout: float,
        lease_seconds: float,
        should_stop: Callable[[], bool] = lambda: False,
        outage_patience: float = 600.0,
        pace: Pace = Pace(),
    ) -> None:
        self._uow_factory = uow_factory
        self._generator = generator
        self._keep_lease = keep_lease
        """Starts the lease's heartbeat once the job holds it (`shared.service.lease_keeper`)."""
        self._task_id = task_id
        self._holder = holder
        """The RQ job id: the lease's owner, the same across an RQ retry of this job."""
        self._item_timeout = item_timeout
        self._lease_seconds = lease_seconds
        self._should_stop = should_stop
        self._outage_patience = outage_patience
        self._pace = pace
        self._lease: Lease | None = None
        self._keeper: Heartbeat | None = None
        self._outcome = JobOutcome()
        self._settled = False
        """The lease is released or lost: nothing is left to hand back."""
        self._roadmap_id = ""
        self._check_at = 0.0
        self._executor = ThreadPoolExecutor(
            max_workers=pace.item_concurrency, thread_name_prefix="generator"
        )

    async def run(self) -> JobOutcome:
        try:
            todo = await self._patiently(self._begin)
            if todo:
                await self._work(deque(todo))
                if not self._settled:
                    await self._patiently(self._leave)
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

    async def _begin(self) -> list[PendingItem]:
        """Take the turn (or give it away) and the lease; the items to generate, in order."""
        async with self._uow_factory() as uow:
            state = await uow.tasks.lock(self._task_id)
            if state is None:
                return []
            self._roadmap_id = state.roadmap_id
            if state.status not in (Status.PENDING, Status.PROCESSING):
                self._outcome.stop = Stop.NOT_RUNNABLE
                return []
            if await self._gives_way(uow, state):
                await uow.commit()
                self._outcome.stop = Stop.DEFERRED
                record_turn_end(Stop.DEFERRED)
                return []
            lease = await uow.leases.acquire(self._task_id, self._holder, self._lease_seconds)
            if lease is None:
                self._outcome.stop = Stop.BUSY
                return []
            waited = await uow.turns.take(self._task_id, state.owner_id)
            todo = await uow.items.pending(self._task_id)
            first = todo[: self._pace.item_concurrency]
            if state.status is Status.PENDING:
                state = await start_task(uow, state, first)
            elif waited is not None and todo:
                state = await resume_turn(uow, state, first)
            if not todo:
                await finish_task(uow, state)
                await uow.leases.release(lease, keep_recoveries=False)
                self._outcome.stop = Stop.FINISHED
            await uow.commit()
        if waited is not None:
            record_wait(waited)
        if todo:
            self._lease = lease
            self._keeper = self._keep_lease(lease, self._lease_seconds)
        return todo

    async def _gives_way(self, uow: AbstractUnitOfWork, state: TaskState) -> bool:
        """Under the task row lock: is another user's turn older than this task's user's?
        Then the task goes back in line (a `turn` dispatch through the outbox)."""
        if not self._pace.in_line:
            return False
        standing = await uow.turns.standing(self._task_id)
        if standing is None or not standing.waiting:
            return False
        if standing.next_owner in (None, state.owner_id) or standing.deferrals >= MAX_DEFERRALS:
            return False
        await uow.tasks.defer(self._task_id)
        rest = await uow.items.pending_keys(self._task_id)
        await uow.outbox.add_job(JobDispatch(GENERATE_CONTENT, self._task_id, tuple(rest), "turn"))
        return True

    async def _work(self, todo: deque[PendingItem]) -> None:
        """Keep up to `item_concurrency` items in flight until the turn is over, storing each
        result as it comes; then let the items in flight finish."""
        results: asyncio.Queue[tuple[PendingItem, float, ItemResult]] = asyncio.Queue()
        running: set[asyncio.Task[None]] = set()
        self._check_at = time.monotonic() + self._pace.slice_seconds
        accepting = True

        async def generate(item: PendingItem, started: float) -> None:
            results.put_nowait((item, started, await self._generate(item)))

        def start(item: PendingItem) -> None:
            task = asyncio.create_task(generate(item, time.monotonic()))
            running.add(task)
            task.add_done_callback(running.discard)
            items_in_flight(1)

        in_flight = 0
        try:
            while todo and in_flight < self._pace.item_concurrency:
                start(todo.popleft())
                in_flight += 1
            while in_flight:
                item, started, result = await results.get()
                in_flight -= 1
                items_in_flight(-1)
                if accepting and await self._turn_is_over():
                    accepting = False
                following = todo[0] if accepting and todo else None
                stored_before = self._outcome.generated
                go_on = await self._patiently(partial(self._record, item, result, following))
                if self._outcome.generated > stored_before:
                    failed = result.error is not None
                    record_item(failed=failed, seconds=time.monotonic() - started)
                accepting = accepting and go_on
                if accepting and following is not None:
                    start(todo.popleft())
                    in_flight += 1
                if self._keeper is not None and self._keeper.lost:
                    self._outcome.stop, self._settled = Stop.LEASE_LOST, True
                    break
        finally:
            for task in running:
                task.cancel()
            items_in_flight(-in_flight)

    async def _turn_is_over(self) -> bool:
        """A shutdown was asked for, or the slice is over and another task waits."""
        if self._should_stop():
            return True
        now = time.monotonic()
        if now < self._check_at or not self._pace.in_line:
            return False
        if await self._others_wait():
            return True
        self._check_at = now + min(RECHECK_SECONDS, self._pace.slice_seconds)
        return False

    async def _others_wait(self) -> bool:
        try:
            async with self._uow_factory() as uow:
                return await uow.turns.others_waiting(self._task_id)
        except DependencyUnavailable:
            return False  # asked again at the next boundary; the store itself is patient

    async def _record(
        self, item: PendingItem, result: ItemResult, following: PendingItem | None
    ) -> bool:
        """ONE transaction: under the task row lock, the fencing check, the result, its
        attempt, its notification (naming `following`, the item started in its place), and the
        finish when nothing else is pending. True when the task is still the job's to work on."""
        assert self._lease is not None
        lease = self._lease
        async with self._uow_factory() as uow:
            recorded = await store_item_result(
                uow,
                lease,
                item,
                result,
                lease_seconds=self._lease_seconds,
                started=() if following is None else (following,),
            )
            if recorded is None or recorded.fenced_out:
                # Unknown, or taken back: this job writes nothing more.
                self._outcome.stop = Stop.NOT_FOUND if recorded is None else Stop.LEASE_LOST
                self._settled = True
                return False
            state, stop = recorded.state, None
            if state.status is not Status.PROCESSING:
                # Cancelled: the items in flight still record their results; the lease is
                # released once they have (`_leave`).
                cancelled = state.status is Status.CANCELLED
                stop = Stop.CANCELLED if cancelled else Stop.NOT_RUNNABLE
            elif recorded.following is None:
                await finish_task(uow, state)
                await uow.leases.release(lease, keep_recoveries=False)
                stop = Stop.FINISHED
            await uow.commit()
        self._outcome.generated += int(recorded.stored)  # once committed, however often tried
        if stop is not None:
            self._outcome.stop, self._settled = stop, stop is Stop.FINISHED
        return stop is None

    async def _leave(self) -> None:
        """The turn is over with the lease still held: hand the rest back, or finish, or (the
        task left `processing`) just let go."""
        assert self._lease is not None
        lease = self._lease
        async with self._uow_factory() as uow:
            state = await uow.tasks.lock(self._task_id)
            held = await uow.leases.held_by(self._task_id, self._holder)
            if state is None or held is None or held.generation != lease.generation:
                self._outcome.stop = Stop.LEASE_LOST if state is not None else Stop.NOT_FOUND
                return
            keep_recoveries = False
            if state.status is Status.PROCESSING:
                rest = await uow.items.pending_keys(self._task_id)
                if rest:
                    await hand_back(uow, state, rest)
                    stop, keep_recoveries = Stop.HANDED_BACK, True  # not a failure, nor a fault
                else:
                    await finish_task(uow, state)
                    stop = Stop.FINISHED
            else:
                stop = Stop.CANCELLED if state.status is Status.CANCELLED else Stop.NOT_RUNNABLE
            await uow.leases.release(lease, keep_recoveries=keep_recoveries)
            await uow.commit()
        self._outcome.stop, self._settled = stop, True
        if stop is Stop.HANDED_BACK:
            record_turn_end(stop)

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
            # The span of this item, under the job's (with an SDK; nothing without one).
            with item_span(request):
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
    """A str or JSON-able dict is content (with its usage when it comes as `Generated`);
    anything else fails the item, saying why."""
    if isinstance(content, Generated):
        usage = content.usage.as_dict() if content.usage is not None else None
        return replace(_checked(content.content), usage=usage)
    if not isinstance(content, str | dict):
        return ItemResult(error=f"generator returned {type(content).__name__}, not str or dict")
    try:
        json.dumps(content)
    except (TypeError, ValueError) as exc:
        return ItemResult(error=f"generator returned content that is not JSON: {exc}")
    return ItemResult(content=content)
