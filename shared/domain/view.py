"""The task view: a task as its owner reads it (docs/protocol.md §6).

The task repository builds it in one read (the task's row and its item counts); the task
services return it; each adapter that shows it (the HTTP API, the WebSocket snapshot, the task
page, `taskrelay admin`) reads its typed fields or sends `as_dict()`, the one JSON shape of the
view. It names no owner: the repository hands the owner alongside, for the service's check.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from shared.domain.model import ItemCounts, Status

RUNNABLE = (Status.PENDING, Status.PROCESSING)
"""The statuses in which a task can wait for a worker."""


@dataclass(frozen=True, slots=True)
class TaskView:
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
