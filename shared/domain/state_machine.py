"""The task state machine: ONE transition table, and the only way a status ever changes.

`plan_transition` validates a (from, to) pair against `TRANSITIONS`, applies the row's field
rules, bumps `seq` and returns the new state with the notification it emits. `plan_event` is
the same for a change that keeps the status (an item result). Both are pure: the service layer
(`shared.service.transitions`) writes the result and its outbox rows in the caller's unit of work.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from typing import Any

from shared.domain.model import Notification, Status, TaskState, clip_error
from shared.errors import TransitionRefused

CANCELLED_MESSAGE = "Task cancelled by user"


class Kind(Enum):
    """What a transition means; callers that need one meaning ask for it (a retry, say)."""

    START = "start"
    CANCEL = "cancel"
    FINISH = "finish"
    RETRY = "retry"


@dataclass(frozen=True, slots=True)
class Rule:
    """How one transition changes the task's fields."""

    kind: Kind
    ends: bool = False
    """Sets `completed_at` to now (entering a final status)."""
    restarts: bool = False
    """Clears `completed_at` and `error_message` (leaving a final status)."""
    needs_error: bool = False
    """The caller must say why (`error_message`); other transitions ignore one."""
    fixed_error: str | None = None
    """The `error_message` this transition always sets."""


_START = Rule(Kind.START)
_CANCEL = Rule(Kind.CANCEL, ends=True, fixed_error=CANCELLED_MESSAGE)
_RETRY = Rule(Kind.RETRY, restarts=True)

TRANSITIONS: dict[tuple[Status, Status], Rule] = {
    (Status.PENDING, Status.PROCESSING): _START,
    (Status.PENDING, Status.CANCELLED): _CANCEL,
    (Status.PROCESSING, Status.CANCELLED): _CANCEL,
    (Status.PROCESSING, Status.COMPLETED): Rule(Kind.FINISH, ends=True),
    (Status.PROCESSING, Status.PARTIAL_FAILURE): Rule(Kind.FINISH, ends=True, needs_error=True),
    (Status.PROCESSING, Status.FAILED): Rule(Kind.FINISH, ends=True, needs_error=True),
    (Status.CANCELLED, Status.PROCESSING): _RETRY,
    (Status.FAILED, Status.PROCESSING): _RETRY,
    (Status.PARTIAL_FAILURE, Status.PROCESSING): _RETRY,
}

FINAL: frozenset[Status] = frozenset(to for (_, to), rule in TRANSITIONS.items() if rule.ends)
"""The statuses a task's work ends in (only a retry leaves one), derived from the table."""


@dataclass(frozen=True, slots=True)
class Change:
    """A planned change: the task's new state and the notification it emits."""

    state: TaskState
    notification: Notification


def rule_for(current: Status, target: Status, kind: Kind | None = None) -> Rule:
    """The rule of (current, target), or TransitionRefused; with `kind`, only that meaning."""
    rule = TRANSITIONS.get((current, target))
    if rule is None or (kind is not None and rule.kind is not kind):
        raise TransitionRefused(current, target, _refusal(current, target, kind))
    return rule


def plan_transition(
    state: TaskState,
    target: Status,
    *,
    step: str,
    message: str,
    now: datetime,
    data: dict[str, Any] | None = None,
    error_message: str | None = None,
    kind: Kind | None = None,
) -> Change:
    """Validate and apply one transition; the state passed in is never modified."""
    rule = rule_for(state.status, target, kind)
    if rule.needs_error and not error_message:
        raise ValueError(f"{state.status} -> {target} needs an error_message")
    completed_at = state.completed_at
    error = state.error_message
    if rule.restarts:
        completed_at, error = None, None
    if rule.ends:
        completed_at = now
    if rule.fixed_error is not None:
        error = rule.fixed_error
    elif rule.needs_error:
        error = clip_error(error_message or "")
    new = _next_state(state, target, step, error, completed_at)
    return Change(new, _notification(new, step, message, data))


def plan_event(
    state: TaskState, *, step: str, message: str, data: dict[str, Any] | None = None
) -> Change:
    """A notification that keeps the status (an item result): bumps `seq` and the step."""
    new = _next_state(state, state.status, step, state.error_message, state.completed_at)
    return Change(new, _notification(new, step, message, data))


def _next_state(
    state: TaskState,
    status: Status,
    step: str,
    error_message: str | None,
    completed_at: datetime | None,
) -> TaskState:
    """The task's state after one change: what the change sets, and `seq` bumped by one.

    Built whole, not with dataclasses.replace(), which reads the fields on every call: this
    runs for every retry, cancel and item result.
    """
    return TaskState(
        task_id=state.task_id,
        roadmap_id=state.roadmap_id,
        owner_id=state.owner_id,
        status=status,
        current_step=step,
        error_message=error_message,
        completed_at=completed_at,
        seq=state.seq + 1,
    )


def _notification(
    state: TaskState, step: str, message: str, data: dict[str, Any] | None
) -> Notification:
    return Notification(state.task_id, state.seq, step, state.status, message, dict(data or {}))


def _refusal(current: Status, target: Status, kind: Kind | None) -> str:
    if kind is Kind.RETRY:
        return f"a {current} task cannot be retried"
    if kind is Kind.CANCEL or target is Status.CANCELLED:
        return f"a {current} task cannot be cancelled"
    return f"a task cannot go from {current} to {target}"
