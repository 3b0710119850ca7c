"""Value objects of the domain: a task's state, its items, what a change emits, and its view.

Everything here is immutable and free of I/O; the database layer maps rows onto these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, get_args
from uuid import UUID


class Status(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    PARTIAL_FAILURE = "partial_failure"
    FAILED = "failed"
    CANCELLED = "cancelled"


class ItemStatus(StrEnum):
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"


ContentType = Literal["tutorial", "resources", "quiz"]
"""The content types a task can ask for (docs/protocol.md §6), in generation order: the one list."""
CONTENT_TYPES: tuple[ContentType, ...] = get_args(ContentType)

MAX_ERROR_CHARS = 1000
"""Error texts are cut to this before they are stored or sent (docs/protocol.md §7)."""


def clip_error(text: str) -> str:
    """An error text fit to store and send: at most `MAX_ERROR_CHARS` characters (a cut one
    ends with an ellipsis) and no NUL, which PostgreSQL text and jsonb cannot hold.

    A generator's exception can be a megabyte: whole, it would go into the item's row, the
    notification and every watching socket's mailbox, and a row past the broker's limit would
    be parked, leaving a permanent gap in the task's `seq`.
    """
    text = text.replace("\x00", "\ufffd")
    if len(text) <= MAX_ERROR_CHARS:
        return text
    return text[: MAX_ERROR_CHARS - 1] + "…"


@dataclass(frozen=True, slots=True)
class TaskState:
    """The fields of a task that the state machine reads and writes."""

    task_id: UUID
    roadmap_id: str
    owner_id: str
    status: Status
    current_step: str | None
    error_message: str | None
    completed_at: datetime | None
    seq: int


@dataclass(frozen=True, slots=True)
class ItemKey:
    """One content item: a concept in one content type."""

    concept_id: str
    content_type: str

    def as_dict(self) -> dict[str, str]:
        return {"concept_id": self.concept_id, "content_type": self.content_type}

    def result(self, error: str | None) -> dict[str, str | None]:
        """`data.item` of the item's notification (protocol §7): failed when there is an error."""
        status = ItemStatus.FAILED if error is not None else ItemStatus.COMPLETED
        return {**self.as_dict(), "status": status.value, "error": error}


@dataclass(frozen=True, slots=True)
class ItemCounts:
    """How many of a task's items are in each status, overall and per content type."""

    total: int = 0
    completed: int = 0
    failed: int = 0
    pending: int = 0
    by_type: dict[str, ItemCounts] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The `items` part of the task view (docs/protocol.md §6)."""
        view = self._flat()
        view["by_type"] = {t: c._flat() for t, c in sorted(self.by_type.items())}
        return view

    def _flat(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "completed": self.completed,
            "failed": self.failed,
            "pending": self.pending,
        }

    @classmethod
    def from_rows(cls, rows: list[tuple[str, str, int]]) -> ItemCounts:
        """Build counts from (content_type, status, count) rows."""
        per_type: dict[str, list[int]] = {}
        for content_type, status, count in rows:
            slot = _SLOTS.get(status)
            if slot is not None:
                per_type.setdefault(content_type, [0, 0, 0])[slot] += count
        by_type = {t: ItemCounts(sum(c), c[0], c[1], c[2]) for t, c in per_type.items()}
        completed, failed, pending = (sum(c[slot] for c in per_type.values()) for slot in range(3))
        return cls(completed + failed + pending, completed, failed, pending, by_type)


_SLOTS = {ItemStatus.COMPLETED.value: 0, ItemStatus.FAILED.value: 1, ItemStatus.PENDING.value: 2}
"""Where each item status is counted, in ItemCounts' field order after `total`."""


@dataclass(frozen=True, slots=True)
class Notification:
    """What a task change tells its watchers: the `progress` frame of docs/protocol.md §7."""

    task_id: UUID
    seq: int
    step: str
    status: Status
    message: str
    data: dict[str, Any]

    def as_body(self) -> dict[str, Any]:
        """The broker message body: the progress frame without `type` (docs/protocol.md §11)."""
        return {
            "task_id": str(self.task_id),
            "seq": self.seq,
            "step": self.step,
            "status": str(self.status),
            "message": self.message,
            "data": self.data,
        }


@dataclass(frozen=True, slots=True)
class JobDispatch:
    """A request for a worker to act on a task, published as `job.<name>`."""

    name: str
    task_id: UUID
    items: tuple[ItemKey, ...]
    reason: str

    def as_body(self) -> dict[str, Any]:
        return {
            "task_id": str(self.task_id),
            "job": self.name,
            "reason": self.reason,
            "items": [item.as_dict() for item in self.items],
        }


RUNNABLE = (Status.PENDING, Status.PROCESSING)
"""The statuses in which a task can wait for a worker."""


@dataclass(frozen=True, slots=True)
class TaskView:
    """A task as its owner reads it (docs/protocol.md §6).

    The task repository builds it in one read (the task's row and its item counts) and hands
    the owner beside it, for the service's check: the view names no owner. The task services
    return it; each adapter that shows it (the HTTP API, the WebSocket snapshot, the task page,
    `taskrelay admin`) reads its fields or sends `as_dict()`, its one JSON shape.
    """

    task_id: UUID
    roadmap_id: str
    status: Status
    current_step: str | None
    error_message: str | None
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    seq: int
    last_message: str | None
    """The `message` of the task's latest notification; None before the first."""
    items: ItemCounts
    waiting_since: datetime | None
    """When the task became runnable with no item started since: it waits for a free worker.
    Shown only while the task is pending or processing."""

    def as_dict(self) -> dict[str, Any]:
        """The view as the API answers it and the snapshot frame carries it (§6): instants
        in ISO 8601, counts with their `by_type`, absent values as None (JSON null)."""
        waiting = self.waiting_since if self.status in RUNNABLE else None
        return {
            "task_id": str(self.task_id),
            "roadmap_id": self.roadmap_id,
            "status": self.status.value,
            "current_step": self.current_step,
            "error_message": self.error_message,
            "completed_at": _iso(self.completed_at),
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
            "seq": self.seq,
            "last_message": self.last_message,
            "items": self.items.as_dict(),
            "waiting_since": _iso(waiting),
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
