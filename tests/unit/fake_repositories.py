"""In-memory repositories of tasks, items and the outbox, over one `FakeState` (`fake_state.py`).

Each subclasses its protocol of `shared.service.ports` (so mypy holds it to the signatures) and
has the same effects as the SQL of its real counterpart where a service can tell: only pending
items take a result, counts come from the counters (the view adds `by_type`), the outbox keeps
every message in order and makes a runnable task wait. The contract suite
(`tests/integration/test_repository_contract.py`) runs the same assertions on both. The
repositories of a job's other state (leases, turns, the inbox, idempotency keys) are in
`fake_work_repositories.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from shared.domain import (
    ItemCounts,
    ItemDetail,
    ItemKey,
    ItemPage,
    ItemRow,
    JobDispatch,
    Notification,
    TaskFilter,
    TaskState,
    TaskSummary,
    TaskView,
)
from shared.domain.records import Lease, PendingItem, Stored
from shared.service.ports import AbstractItemRepository, AbstractOutbox, AbstractTaskRepository
from tests.unit.fake_state import FakeItem, FakeLocks, FakeState, runnable
from tests.unit.fake_work_repositories import FakeLeases


class FakeTasks(AbstractTaskRepository):
    def __init__(self, state: FakeState, locks: FakeLocks) -> None:
        self._s = state
        self._locks = locks

    def _locked(self, task: TaskState | None) -> TaskState | None:
        if task is not None:
            self._locks.take(("task", task.task_id))
        return task

    async def add(self, state: TaskState, now: datetime) -> None:
        self._s.tasks[state.task_id] = state

    async def exists(self, task_id: UUID) -> bool:
        return task_id in self._s.tasks

    async def owner(self, task_id: UUID) -> str | None:
        task = self._s.tasks.get(task_id)
        return task.owner_id if task else None

    async def defer(self, task_id: UUID) -> None:
        self._s.deferrals[task_id] = self._s.deferrals.get(task_id, 0) + 1

    async def open_items(self, owner_id: str) -> int:
        open_ids = [
            t.task_id for t in self._s.tasks.values() if t.owner_id == owner_id and runnable(t)
        ]
        return sum([(await FakeItems(self._s).counts(i)).pending for i in open_ids])

    async def lock(self, task_id: UUID) -> TaskState | None:
        return self._locked(self._s.tasks.get(task_id))

    async def lock_owned(self, task_id: UUID, owner_id: str) -> TaskState | None:
        task = self._s.tasks.get(task_id)
        return self._locked(task if task is not None and task.owner_id == owner_id else None)

    async def lock_unless_busy(self, task_id: UUID) -> TaskState | None:
        task = self._s.tasks.get(task_id)
        if task is None or not self._locks.try_take(("task", task_id)):
            return None
        return task

    async def overview(self, wanted: TaskFilter) -> list[TaskSummary]:
        """No creation instants here: every task is 0 s old, so `older_than` > 0 lists none."""
        if wanted.older_than_seconds > 0:
            return []
        found = []
        for task in self._s.tasks.values():
            if task.status not in wanted.statuses or wanted.owner_id not in (None, task.owner_id):
                continue
            counts = await FakeItems(self._s).counts(task.task_id)
            lease = self._s.leases.get(task.task_id)
            found.append(
                TaskSummary(
                    task.task_id,
                    task.owner_id,
                    task.status.value,
                    0.0,
                    counts.total,
                    counts.completed,
                    counts.failed,
                    lease.recoveries if lease else 0,
                    task.error_message,
                )
            )
        return found[: wanted.limit]

    async def view(self, task_id: UUID) -> tuple[str, TaskView] | None:
        task = self._s.tasks.get(task_id)
        if task is None:
            return None
        now = datetime.now(UTC)
        view = TaskView(
            task_id=task.task_id,
            roadmap_id=task.roadmap_id,
            status=task.status,
            current_step=task.current_step,
            error_message=task.error_message,
            completed_at=task.completed_at,
            created_at=now,
            updated_at=now,
            seq=task.seq,
            last_message=self._s.last_message.get(task_id),
            items=FakeItems(self._s).counts_by_type(task_id),
            waiting_since=self._s.waiting_since.get(task_id),
        )
        return task.owner_id, view


class FakeItems(AbstractItemRepository):
    def __init__(self, state: FakeState) -> None:
        self._s = state

    async def add_many(
        self, task_id: UUID, items: Sequence[tuple[ItemKey, str]], now: datetime
    ) -> None:
        self._s.items[task_id] = [FakeItem(k, t, p) for p, (k, t) in enumerate(items)]

    async def reset_unfinished(self, task_id: UUID, now: datetime) -> list[ItemKey]:
        reset = [i for i in self._s.items.get(task_id, []) if i.status != "completed"]
        for item in reset:
            item.status, item.updated_at = "pending", now
        return [i.key for i in reset]

    async def counts(self, task_id: UUID) -> ItemCounts:
        """From the counters, like the real one: no `by_type` (the task view has those)."""
        whole = self.counts_by_type(task_id)
        return ItemCounts(whole.total, whole.completed, whole.failed, whole.pending)

    def counts_by_type(self, task_id: UUID) -> ItemCounts:
        tally: dict[tuple[str, str], int] = {}
        for i in self._s.items.get(task_id, []):
            tally[i.key.content_type, i.status] = tally.get((i.key.content_type, i.status), 0) + 1
        return ItemCounts.from_rows([(t, s, n) for (t, s), n in tally.items()])

    async def page(
        self, task_id: UUID, after: int, limit: int, status: str | None
    ) -> ItemPage | None:
        task = self._s.tasks.get(task_id)
        if task is None:
            return None
        chosen = [
            i
            for i in self._s.items.get(task_id, [])
            if i.position > after and status in (None, i.status)
        ][:limit]
        now = datetime.now(UTC)
        rows = [
            ItemRow(
                i.position,
                i.key.concept_id,
                i.title,
                i.key.content_type,
                i.status,
                i.attempts,
                i.error,
                now,
            )
            for i in chosen
        ]
        return ItemPage(owner_id=task.owner_id, seq=task.seq, items=rows)

    async def one(self, task_id: UUID, key: ItemKey) -> ItemDetail | None:
        state = self._s.tasks.get(task_id)
        item = next((i for i in self._s.items.get(task_id, []) if i.key == key), None)
        if state is None or item is None:
            return None
        row = ItemRow(
            item.position,
            key.concept_id,
            item.title,
            key.content_type,
            item.status,
            item.attempts,
            item.error,
            item.updated_at,
        )
        return ItemDetail(state.owner_id, row, item.content, item.usage)

    async def next_pending(self, task_id: UUID) -> PendingItem | None:
        for i in self._s.items.get(task_id, []):
            if i.status == "pending":
                return PendingItem(i.key, i.title, i.attempts)
        return None

    async def pending(self, task_id: UUID) -> list[PendingItem]:
        items = self._s.items.get(task_id, [])
        return [PendingItem(i.key, i.title, i.attempts) for i in items if i.status == "pending"]

    async def pending_keys(self, task_id: UUID) -> list[ItemKey]:
        return [i.key for i in self._s.items.get(task_id, []) if i.status == "pending"]

    async def store_result(
        self,
        lease: Lease,
        key: ItemKey,
        *,
        content: Any,
        error: str | None,
        now: datetime,
        lease_seconds: float,
        usage: dict[str, int] | None = None,
    ) -> Stored | None:
        state = self._s.tasks.get(lease.task_id)
        if state is None:
            return None
        items = self._s.items.get(lease.task_id, [])
        item = next((i for i in items if i.key == key and i.status == "pending"), None)
        renewed = await FakeLeases(self._s).renew(lease, lease_seconds, progress=item is not None)
        if not renewed:
            return Stored(state, fenced_out=True, counts=None, following=None)
        if item is not None:
            item.status = "failed" if error is not None else "completed"
            item.attempts, item.error = item.attempts + 1, error
            item.content = content if error is None else None
            item.usage = usage if error is None else None
            item.updated_at = now
        counts = await self.counts(lease.task_id) if item is not None else None
        following = await self.next_pending(lease.task_id)
        return Stored(state, fenced_out=False, counts=counts, following=following)


class FakeOutbox(AbstractOutbox):
    def __init__(self, state: FakeState) -> None:
        self._s = state

    async def add_job(self, job: JobDispatch) -> UUID:
        return (await self.add(job))[0]

    async def add(self, *messages: Notification | JobDispatch) -> list[UUID]:
        self._s.outbox.extend(messages)
        for message in messages:
            task = self._s.tasks.get(message.task_id)
            if isinstance(message, JobDispatch) and task is not None and runnable(task):
                self._s.waiting_since.setdefault(message.task_id, datetime.now(UTC))
        return [UUID(int=len(self._s.outbox) - len(messages) + n) for n in range(len(messages))]

    async def emit(
        self, state: TaskState, now: datetime, notification: Notification, *jobs: JobDispatch
    ) -> None:
        self._s.tasks[state.task_id] = state
        self._s.last_message[state.task_id] = notification.message
        if not runnable(state):
            self._s.waiting_since.pop(state.task_id, None)
        await self.add(notification, *jobs)
