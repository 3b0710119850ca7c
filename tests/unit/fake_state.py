"""The committed state of the fake database, and the locks its units of work hold.

`FakeUnitOfWork` (`fakes.py`) copies a `FakeState` when it starts and publishes the copy when it
commits; the in-memory repositories (`fake_repositories.py`, `fake_work_repositories.py`) read
and change that copy. Locks are not state: they belong to the open units of work (`FakeLocks`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from shared.domain import ItemKey, ItemStatus, JobDispatch, Notification, Status, TaskState
from shared.domain.records import StoredResponse, WorkFacts


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


def runnable(task: TaskState) -> bool:
    """Pending or processing: a task that can wait for a worker."""
    return task.status in (Status.PENDING, Status.PROCESSING)
