"""The records the repositories hand the services: plain values, no driver, no SQL.

They live in the domain so that the ports (`shared.service.ports`) and the fakes of the unit
tests speak of them without importing an adapter; the PostgreSQL repositories
(`shared.adapters.postgres`) build them from their rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from shared.domain.model import ItemCounts, ItemKey, Status, TaskState


@dataclass(frozen=True, slots=True)
class Standing:
    """Where a task stands in line, read under its row lock."""

    waiting: bool
    """A dispatch was written for it and no job has taken it since."""
    deferrals: int
    """Turns its jobs gave away in a row."""
    next_owner: str | None
    """The user whose turn is next: of the users with a task in line, the one served longest
    ago (None: nobody is in line)."""


@dataclass(frozen=True, slots=True)
class WorkFacts:
    """One task's work, as the database sees it (ages in seconds, database clock)."""

    task_id: UUID
    status: Status
    holder: str | None
    """The RQ job holding the lease (lapsed: live leases are never listed), or None."""
    generation: int
    lapsed_for: float | None
    dispatch_id: int | None
    """The task's latest job dispatch still in the outbox (None once it was cleaned up)."""
    dispatch_waiting: bool
    """Not yet published: the relay's to deliver."""
    dispatch_parked: bool
    published_for: float | None
    dispatch_taken: bool
    """A worker took the dispatch's message and enqueued `job_id`."""
    job_id: str | None
    """The RQ job of the task's latest job message taken by a worker."""
    cursor: tuple[datetime, UUID]


@dataclass(frozen=True, slots=True)
class Lease:
    """A job's hold on its task: who, and which taking of the lease (the fencing token)."""

    task_id: UUID
    holder: str
    generation: int


@dataclass(frozen=True, slots=True)
class PendingItem:
    """An item still to generate, with what the content generator is told about it."""

    key: ItemKey
    concept_title: str
    attempts: int
    """Tries counted so far; the next one is attempt `attempts + 1`."""


@dataclass(frozen=True, slots=True)
class Stored:
    """What `ItemRepository.store_result` found and did, in its one statement."""

    state: TaskState
    """The task as the statement locked it, before any notification of this result."""
    fenced_out: bool
    """The lease no longer carries the job's generation: nothing was written."""
    counts: ItemCounts | None
    """The task's counts (no `by_type`) after the store; None when nothing was stored."""
    following: PendingItem | None
    """The first pending item in generation order after the store (never the stored one)."""

    @property
    def stored(self) -> bool:
        """False when nothing was written: fenced out, or the item was no longer pending (a
        duplicate job)."""
        return self.counts is not None


@dataclass(frozen=True, slots=True)
class StoredResponse:
    request_hash: str
    status_code: int
    body: Any
