"""Every (from, to) pair of the six statuses against the one transition table (protocol §5)."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest

from shared.domain import (
    FINAL,
    MAX_ERROR_CHARS,
    TRANSITIONS,
    ItemCounts,
    Kind,
    Status,
    TaskState,
    clip_error,
    plan_event,
    plan_transition,
)
from shared.errors import TransitionRefused

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(hours=1)

ALLOWED = {
    (Status.PENDING, Status.PROCESSING),
    (Status.PENDING, Status.CANCELLED),
    (Status.PROCESSING, Status.CANCELLED),
    (Status.PROCESSING, Status.COMPLETED),
    (Status.PROCESSING, Status.PARTIAL_FAILURE),
    (Status.PROCESSING, Status.FAILED),
    (Status.CANCELLED, Status.PROCESSING),
    (Status.FAILED, Status.PROCESSING),
    (Status.PARTIAL_FAILURE, Status.PROCESSING),
}
PAIRS = list(itertools.product(Status, Status))


def make_state(status: Status) -> TaskState:
    finished = status in (
        Status.COMPLETED,
        Status.PARTIAL_FAILURE,
        Status.FAILED,
        Status.CANCELLED,
    )
    return TaskState(
        task_id=uuid4(),
        roadmap_id="roadmap-1",
        owner_id="alice",
        status=status,
        current_step="before",
        error_message="old error" if finished else None,
        completed_at=EARLIER if finished else None,
        seq=7,
    )


def test_table_is_exactly_the_contract() -> None:
    assert set(TRANSITIONS) == ALLOWED


def test_final_statuses_are_those_that_set_completed_at() -> None:
    finals = {Status.COMPLETED, Status.PARTIAL_FAILURE, Status.FAILED, Status.CANCELLED}
    assert finals == FINAL


@pytest.mark.parametrize(("current", "target"), PAIRS, ids=lambda s: str(s))
def test_every_pair(current: Status, target: Status) -> None:
    state = make_state(current)
    before = dataclasses.replace(state)
    if (current, target) not in ALLOWED:
        with pytest.raises(TransitionRefused):
            plan_transition(state, target, step="s", message="m", now=NOW, error_message="why")
        assert state == before
        return

    change = plan_transition(state, target, step="s", message="m", now=NOW, error_message="why")
    new = change.state
    assert state == before, "the state passed in is never modified"
    assert new.status is target
    assert new.seq == state.seq + 1
    assert new.current_step == "s"
    note = change.notification
    assert (note.seq, note.status, note.step, note.message) == (new.seq, target, "s", "m")
    assert note.task_id == state.task_id

    if target is Status.PROCESSING and current is not Status.PENDING:
        assert new.completed_at is None
        assert new.error_message is None
    elif target is Status.PROCESSING:
        assert new.completed_at is None
    elif target is Status.CANCELLED:
        assert new.completed_at == NOW
        assert new.error_message == "Task cancelled by user"
    elif target is Status.COMPLETED:
        assert new.completed_at == NOW
    else:  # failed, partial_failure
        assert new.completed_at == NOW
        assert new.error_message == "why"


@pytest.mark.parametrize("target", [Status.FAILED, Status.PARTIAL_FAILURE])
def test_failure_needs_a_reason(target: Status) -> None:
    with pytest.raises(ValueError, match="error_message"):
        plan_transition(make_state(Status.PROCESSING), target, step="s", message="m", now=NOW)


def test_completed_keeps_no_old_error() -> None:
    state = dataclasses.replace(make_state(Status.PROCESSING), error_message=None)
    change = plan_transition(state, Status.COMPLETED, step="done", message="m", now=NOW)
    assert change.state.error_message is None


@pytest.mark.parametrize("current", list(Status))
def test_retry_kind_only_from_finished_failures(current: Status) -> None:
    state = make_state(current)
    if current in (Status.CANCELLED, Status.FAILED, Status.PARTIAL_FAILURE):
        change = plan_transition(
            state, Status.PROCESSING, step="r", message="m", now=NOW, kind=Kind.RETRY
        )
        assert change.state.completed_at is None
        assert change.state.error_message is None
    else:
        with pytest.raises(TransitionRefused, match="cannot be retried"):
            plan_transition(
                state, Status.PROCESSING, step="r", message="m", now=NOW, kind=Kind.RETRY
            )


def test_event_keeps_status_and_bumps_seq() -> None:
    state = make_state(Status.PROCESSING)
    change = plan_event(state, step="item", message="m", data={"completed_items": 1})
    assert change.state.status is Status.PROCESSING
    assert change.state.seq == state.seq + 1
    assert change.notification.data == {"completed_items": 1}
    assert change.notification.as_body()["status"] == "processing"


def test_error_texts_are_cut_to_1000_characters_without_nul() -> None:
    assert clip_error("short") == "short"
    assert clip_error("a\x00b") == "a\ufffdb"
    cut = clip_error("E" * 1_000_000)
    assert len(cut) == MAX_ERROR_CHARS
    assert cut.endswith("…")
    assert clip_error("E" * MAX_ERROR_CHARS) == "E" * MAX_ERROR_CHARS


def test_item_counts_from_grouped_rows() -> None:
    counts = ItemCounts.from_rows(
        [
            ("tutorial", "completed", 2),
            ("tutorial", "failed", 1),
            ("quiz", "pending", 4),
            ("quiz", "completed", 1),
        ]
    )
    assert counts.as_dict() == {
        "total": 8,
        "completed": 3,
        "failed": 1,
        "pending": 4,
        "by_type": {
            "quiz": {"total": 5, "completed": 1, "failed": 0, "pending": 4},
            "tutorial": {"total": 3, "completed": 2, "failed": 1, "pending": 0},
        },
    }
    assert ItemCounts.from_rows([]) == ItemCounts()
