"""In-memory repositories over one `FakeState`, for the fake unit of work (`fakes.py`).

Each subclasses its protocol of `shared.service.ports` (so mypy holds it to the signatures) and
has the same effects as the SQL of its real counterpart where a service can tell: only pending
items take a result, a lease is taken only when free, lapsed or already the holder's (on a fake
clock), the outbox keeps every message in order. The contract suite
(`tests/integration/test_repository_contract.py`) runs the same assertions on both.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from shared.domain import (
    ItemCounts,
    ItemDetail,
    ItemKey,
    ItemPage,
    ItemRow,
    ItemStatus,
    JobDispatch,
    Notification,
    Status,
    TaskFilter,
    TaskState,
    TaskSummary,
    TaskView,
)
from shared.domain.records import Lease, PendingItem, Standing, Stored, StoredResponse, WorkFacts
from shared.service.ports import (
    AbstractIdempotencyRepository,
    AbstractInboxRepository,
    AbstractItemRepository,
    AbstractLeaseRepository,
    AbstractLivenessRepository,
    AbstractOutbox,
    AbstractTaskRepository,
    AbstractTurnRepository,
)


@dataclass(slots=True)
class FakeItem:
    key: ItemKey
    title: str
    position: int
    status: str = ItemStatus.PENDING.value
    attempts: int = 0
    error: str | None = None
    content: Any = None
    usage: dict[str, int] | None = None
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(slots=True)
class FakeLease:
    holder: str | None
    expires_at: float | None
    generation: int
    recoveries: int = 0


@dataclass(slots=True)
class FakeReceipt:
    """A job message the consumer turned into an RQ job (a `job_inbox` row)."""

    task_id: UUID
    job_id: str
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(slots=True)
class FakeSaved:
    """A stored response (an `idempotency_keys` row)."""

    response: StoredResponse
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(slots=True)
class FakeState:
    """The committed database: what a unit of work copies in and publishes back."""

    tasks: dict[UUID, TaskState] = field(default_factory=dict)
    last_message: dict[UUID, str] = field(default_factory=dict)
    items: dict[UUID, list[FakeItem]] = field(default_factory=dict)
    outbox: list[Notification | JobDispatch] = field(default_factory=list)
    leases: dict[UUID, FakeLease] = field(default_factory=dict)
    inbox: dict[UUID, FakeReceipt] = field(default_factory=dict)
    idempotency: dict[tuple[str, str], FakeSaved] = field(default_factory=dict)
    waiting_since: dict[UUID, datetime] = field(default_factory=dict)
    """Tasks waiting for a worker (a dispatch written, no job has taken them since)."""
    deferrals: dict[UUID, int] = field(default_factory=dict)
    turns: dict[str, datetime] = field(default_factory=dict)
    """Each user's last turn."""
    facts: list[WorkFacts] = field(default_factory=list)
    """What the liveness read model lists; a test sets it, as the real query derives it."""
    clock: float = 0.0
    """The database clock for leases, in seconds."""


class FakeLocks:
    """The locks one unit of work holds, in the table of every open unit of work's locks: a task
    row (`FOR UPDATE`) or an advisory lock, held until the unit of work ends.

    A lock another open unit of work holds is refused where the SQL skips it or tries
    (`SKIP LOCKED`, `pg_try_advisory_xact_lock`); where PostgreSQL would wait, the fake cannot
    (one copy of the state per unit of work, no merging), so it says so.
    """

    def __init__(self, held: dict[object, object], owner: object) -> None:
        self._held = held
        self._owner = owner

    def try_take(self, key: object) -> bool:
        holder = self._held.setdefault(key, self._owner)
        return holder is self._owner

    def take(self, key: object) -> None:
        if not self.try_take(key):
            raise RuntimeError(f"the fake cannot wait for {key}: another unit of work holds it")

    def release_all(self) -> None:
        for key in [k for k, holder in self._held.items() if holder is self._owner]:
            del self._held[key]


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

    async def open_items(self, owner_id: str) -> int:
        open_ids = [
            t.task_id
            for t in self._s.tasks.values()
            if t.owner_id == owner_id and t.status in (Status.PENDING, Status.PROCESSING)
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
            if isinstance(message, JobDispatch) and task is not None and _runnable(task):
                self._s.waiting_since.setdefault(message.task_id, datetime.now(UTC))
        return [UUID(int=len(self._s.outbox) - len(messages) + n) for n in range(len(messages))]

    async def emit(
        self, state: TaskState, now: datetime, notification: Notification, *jobs: JobDispatch
    ) -> None:
        self._s.tasks[state.task_id] = state
        self._s.last_message[state.task_id] = notification.message
        if not _runnable(state):
            self._s.waiting_since.pop(state.task_id, None)
        await self.add(notification, *jobs)


def _runnable(task: TaskState) -> bool:
    return task.status in (Status.PENDING, Status.PROCESSING)


class FakeTurns(AbstractTurnRepository):
    """The scheduler's view: of the tasks in line, the user served longest ago goes next."""

    def __init__(self, state: FakeState) -> None:
        self._s = state

    def _in_line(self) -> list[tuple[UUID, datetime]]:
        """The waiting tasks a worker took a dispatch of since they began to wait (their RQ
        job is in line), with when they began."""
        return [
            (tid, since)
            for tid, since in self._s.waiting_since.items()
            if _runnable(self._s.tasks[tid])
            and any(r.task_id == tid and r.received_at >= since for r in self._s.inbox.values())
        ]

    async def standing(self, task_id: UUID) -> Standing | None:
        if task_id not in self._s.tasks:
            return None
        waiting = []
        for tid, since in self._in_line():
            owner = self._s.tasks[tid].owner_id
            waiting.append((self._s.turns.get(owner), since, owner))
        # Never served first, then the oldest turn, then the longest wait.
        waiting.sort(key=lambda w: (w[0] is not None, w[0] or w[1], w[1]))
        next_owner = waiting[0][2] if waiting else None
        deferrals = self._s.deferrals.get(task_id, 0)
        return Standing(task_id in self._s.waiting_since, deferrals, next_owner)

    async def defer(self, task_id: UUID) -> None:
        self._s.deferrals[task_id] = self._s.deferrals.get(task_id, 0) + 1

    async def take(self, task_id: UUID, owner_id: str) -> float | None:
        since = self._s.waiting_since.pop(task_id, None)
        self._s.deferrals[task_id] = 0
        now = datetime.now(UTC)
        self._s.turns[owner_id] = now
        return None if since is None else (now - since).total_seconds()

    async def others_waiting(self, task_id: UUID) -> bool:
        return any(tid != task_id for tid, _ in self._in_line())


class FakeLeases(AbstractLeaseRepository):
    def __init__(self, state: FakeState) -> None:
        self._s = state

    def _lapsed(self, lease: FakeLease) -> bool:
        return lease.expires_at is not None and lease.expires_at < self._s.clock

    async def acquire(self, task_id: UUID, holder: str, seconds: float) -> Lease | None:
        lease = self._s.leases.get(task_id)
        if lease is None:
            lease = self._s.leases[task_id] = FakeLease(None, None, 0)
        elif not (lease.holder in (None, holder) or self._lapsed(lease)):
            return None
        lease.holder, lease.expires_at = holder, self._s.clock + seconds
        lease.generation += 1
        return Lease(task_id, holder, lease.generation)

    def _mine(self, lease: Lease) -> FakeLease | None:
        held = self._s.leases.get(lease.task_id)
        if held and (held.holder, held.generation) == (lease.holder, lease.generation):
            return held
        return None

    async def renew(self, lease: Lease, seconds: float, *, progress: bool = False) -> bool:
        held = self._mine(lease)
        if held is not None:
            held.expires_at = self._s.clock + seconds
            held.recoveries = 0 if progress else held.recoveries
        return held is not None

    async def release(self, lease: Lease, *, keep_recoveries: bool) -> bool:
        held = self._mine(lease)
        if held is not None:
            held.holder = held.expires_at = None
            held.recoveries = held.recoveries if keep_recoveries else 0
        return held is not None

    async def held_by(self, task_id: UUID, holder: str) -> Lease | None:
        held = self._s.leases.get(task_id)
        if held is None or held.holder != holder:
            return None
        return Lease(task_id, holder, held.generation)

    async def forget(self, task_id: UUID) -> None:
        if (held := self._s.leases.get(task_id)) is not None:
            held.holder = held.expires_at = None
            held.recoveries = 0

    async def take_back(self, task_id: UUID, generation: int) -> int | None:
        held = self._s.leases.get(task_id)
        if held is None:
            held = self._s.leases[task_id] = FakeLease(None, None, 1, 1)
            return 1
        if held.generation != generation or not (held.holder is None or self._lapsed(held)):
            return None
        held.holder = held.expires_at = None
        held.generation += 1
        held.recoveries += 1
        return held.recoveries


class FakeInbox(AbstractInboxRepository):
    def __init__(self, state: FakeState) -> None:
        self._s = state

    async def seen(self, message_id: UUID) -> bool:
        return message_id in self._s.inbox

    async def record(self, message_id: UUID, task_id: UUID, job_id: str) -> None:
        self._s.inbox.setdefault(message_id, FakeReceipt(task_id, job_id))

    async def purge(self, older_than_seconds: float, limit: int = 1000) -> int:
        before = datetime.now(UTC) - timedelta(seconds=older_than_seconds)
        old = [m for m, r in self._s.inbox.items() if r.received_at < before][:limit]
        for message_id in old:
            del self._s.inbox[message_id]
        return len(old)


class FakeIdempotency(AbstractIdempotencyRepository):
    def __init__(self, state: FakeState, locks: FakeLocks) -> None:
        self._s = state
        self._locks = locks

    async def try_lock(self, owner_id: str, key: str) -> bool:
        return self._locks.try_take(("idempotency", owner_id, key))

    async def find(self, owner_id: str, key: str, not_before: datetime) -> StoredResponse | None:
        saved = self._s.idempotency.get((owner_id, key))
        return saved.response if saved is not None and saved.created_at >= not_before else None

    async def save(
        self, owner_id: str, key: str, request_hash: str, status_code: int, body: Any
    ) -> None:
        response = StoredResponse(request_hash, status_code, body)
        self._s.idempotency[owner_id, key] = FakeSaved(response)


class FakeLiveness(AbstractLivenessRepository):
    def __init__(self, state: FakeState) -> None:
        self._s = state

    async def without_live_lease(
        self, quiet_seconds: float, limit: int, after: tuple[datetime, UUID] | None = None
    ) -> list[WorkFacts]:
        """The seeded facts of tasks still pending or processing, paged by cursor."""
        active = (Status.PENDING, Status.PROCESSING)
        listed = [
            f
            for f in sorted(self._s.facts, key=lambda f: f.cursor)
            if (after is None or f.cursor > after)
            and (task := self._s.tasks.get(f.task_id)) is not None
            and task.status in active
        ]
        return [replace(f, status=self._s.tasks[f.task_id].status) for f in listed[:limit]]
