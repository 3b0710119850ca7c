"""In-memory repositories of a job's other state: leases, turns, the inbox, idempotency keys,
and the reconciler's read model, over one `FakeState` (`fake_state.py`).

Each subclasses its protocol of `shared.service.ports` and behaves as its SQL does where a
service can tell: a lease is taken only when free, lapsed or already the holder's (on the fake's
clock), taking one back needs it lapsed and unchanged; a task is in line once a worker took its
dispatch; inbox entries and stored responses age by the wall clock. The contract suite
(`tests/integration/test_repository_contract_work.py`) runs the same assertions on both. The
liveness read model lists the facts a test seeds, as the real query derives them.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from shared.domain import Status
from shared.domain.records import Lease, Standing, StoredResponse, WorkFacts
from shared.service.ports import (
    AbstractIdempotencyRepository,
    AbstractInboxRepository,
    AbstractLeaseRepository,
    AbstractLivenessRepository,
    AbstractTurnRepository,
)
from tests.unit.fake_state import FakeLease, FakeLocks, FakeReceipt, FakeSaved, FakeState, runnable


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
            if runnable(self._s.tasks[tid])
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
