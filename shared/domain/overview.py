"""Tasks as an operator looks over them: which wait too long, fail, or keep being recovered.

`TaskFilter` says which tasks `taskrelay admin tasks` lists; `TaskSummary` is one of them, in
the shape docs/protocol.md §2 fixes for `--json`. Reading them is the task repository's `overview`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from shared.domain.model import Status

ATTENTION = (Status.PENDING, Status.PROCESSING, Status.FAILED, Status.PARTIAL_FAILURE)
"""What the listing shows unless asked for one status: unfinished or failed tasks."""


@dataclass(frozen=True, slots=True)
class TaskFilter:
    statuses: tuple[Status, ...] = ATTENTION
    older_than_seconds: float = 0.0
    """Only tasks created at least this long ago."""
    owner_id: str | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class TaskSummary:
    task_id: UUID
    owner_id: str
    status: str
    age_seconds: float
    """Since the task was created."""
    items_total: int
    items_completed: int
    items_failed: int
    recoveries: int
    """Times the reconciler gave the task's work again after a fault (its current lease)."""
    error_message: str | None

    def as_dict(self) -> dict[str, Any]:
        """One entry of `admin tasks --json` (docs/protocol.md §2)."""
        pending = max(self.items_total - self.items_completed - self.items_failed, 0)
        return {
            "task_id": str(self.task_id),
            "owner_id": self.owner_id,
            "status": self.status,
            "age_seconds": round(self.age_seconds, 3),
            "items": {
                "total": self.items_total,
                "completed": self.items_completed,
                "failed": self.items_failed,
                "pending": pending,
            },
            "recoveries": self.recoveries,
            "error_message": self.error_message,
        }
