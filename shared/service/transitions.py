"""Apply the state machine inside a unit of work: the one place a status is written.

`transition` plans the change with the pure table, then saves the task and writes the
notification (and, when given, the job dispatch) to the outbox in one statement
(`OutboxWriter.emit`), in the caller's transaction.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from shared.domain import Change, JobDispatch, Kind, Status, TaskState
from shared.domain.state_machine import plan_event, plan_transition
from shared.observability.logging import get_logger
from shared.service.ports import AbstractUnitOfWork

log = get_logger(__name__)


async def transition(
    uow: AbstractUnitOfWork,
    state: TaskState,
    target: Status,
    *,
    step: str,
    message: str,
    data: dict[str, Any] | None = None,
    error_message: str | None = None,
    kind: Kind | None = None,
    job: JobDispatch | None = None,
) -> Change:
    """Change the task's status; `state` must have been read with `uow.tasks.lock`."""
    now = datetime.now(UTC)
    change = plan_transition(
        state,
        target,
        step=step,
        message=message,
        now=now,
        data=data,
        error_message=error_message,
        kind=kind,
    )
    await _write(uow, change, now, job)
    return change


async def emit_event(
    uow: AbstractUnitOfWork,
    state: TaskState,
    *,
    step: str,
    message: str,
    data: dict[str, Any] | None = None,
    job: JobDispatch | None = None,
) -> Change:
    """A notification that keeps the status (an item result); bumps `seq` like a transition."""
    now = datetime.now(UTC)
    change = plan_event(state, step=step, message=message, data=data)
    await _write(uow, change, now, job)
    return change


async def _write(
    uow: AbstractUnitOfWork, change: Change, now: datetime, job: JobDispatch | None
) -> None:
    await uow.outbox.emit(change.state, now, change.notification, *([job] if job else []))
    note = change.notification
    uow.on_commit(
        lambda: log.info(
            "task_status_updated",
            task_id=str(note.task_id),
            status=str(note.status),
            step=note.step,
            seq=note.seq,
        )
    )
