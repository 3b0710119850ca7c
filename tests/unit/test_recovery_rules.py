"""The reconciler's judgement, rule by rule: when a task still has live work, and when not."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import pytest

from shared.domain import Status
from shared.domain.records import WorkFacts
from shared.service.recovery import JobState, JobStatus, judge

STALE = 30.0
LONG = 3600.0


def facts(**changes: object) -> WorkFacts:
    base: dict[str, object] = {
        "task_id": uuid4(),
        "status": Status.PROCESSING,
        "holder": None,
        "generation": 1,
        "lapsed_for": None,
        "dispatch_id": 7,
        "dispatch_waiting": False,
        "dispatch_parked": False,
        "published_for": LONG,
        "dispatch_taken": True,
        "job_id": "generate-1",
        "cursor": (datetime.now(UTC), uuid4()),
    }
    base.update(changes)
    return WorkFacts(**base)  # type: ignore[arg-type]


def verdict(f: WorkFacts, jobs: dict[str, JobState] | None = None, healthy: float = LONG) -> str:
    return str(judge(f, jobs or {}, healthy_for=healthy, stale_after=STALE))


@pytest.mark.parametrize(
    ("case", "jobs", "healthy"),
    [
        (facts(dispatch_waiting=True, dispatch_taken=False, job_id=None), {}, LONG),
        (facts(dispatch_taken=False, published_for=5.0), {}, LONG),
        (facts(dispatch_taken=False, published_for=LONG), {}, 5.0),
        (facts(), {"generate-1": JobState(JobStatus.QUEUED)}, LONG),
        (facts(), {"generate-1": JobState(JobStatus.STARTED, 5.0)}, LONG),
        (facts(), {"generate-1": JobState(JobStatus.STARTED, LONG)}, 5.0),
        (
            facts(holder="generate-1", lapsed_for=5.0),
            {"generate-1": JobState(JobStatus.STARTED, LONG)},
            LONG,
        ),
    ],
    ids=[
        "in the outbox",
        "just published",
        "published before an outage that just ended",
        "queued in RQ",
        "just started",
        "started before an outage that just ended",
        "lease just lapsed while its job runs",
    ],
)
def test_live_work_is_left_alone(
    case: WorkFacts, jobs: dict[str, JobState], healthy: float
) -> None:
    assert judge(case, jobs, healthy_for=healthy, stale_after=STALE) is None


def test_a_lapsed_lease_whose_job_is_gone_or_long_lapsed_is_lost() -> None:
    gone = facts(holder="generate-1", lapsed_for=1.0)
    assert "stopped renewing its lease" in verdict(gone)
    long_lapsed = facts(holder="generate-1", lapsed_for=LONG)
    running = {"generate-1": JobState(JobStatus.STARTED, LONG)}
    assert "stopped renewing its lease" in verdict(long_lapsed, running)


def test_a_message_nobody_took_a_parked_dispatch_or_none_at_all_is_lost() -> None:
    assert "never taken" in verdict(facts(dispatch_taken=False))
    assert "could not be published" in verdict(facts(dispatch_parked=True, dispatch_taken=False))
    assert "no job dispatch" in verdict(facts(dispatch_id=None, dispatch_taken=False, job_id=None))


def test_a_job_lost_from_redis_ended_or_started_long_ago_is_lost() -> None:
    assert "lost from Redis" in verdict(facts())
    assert "ended without finishing" in verdict(facts(), {"generate-1": JobState(JobStatus.ENDED)})
    stuck = {"generate-1": JobState(JobStatus.STARTED, LONG)}
    assert "never took the task" in verdict(facts(), stuck)


def test_a_cleaned_up_dispatch_falls_back_on_the_job_the_inbox_recorded() -> None:
    cleaned = facts(dispatch_id=None, published_for=None)
    assert (
        judge(
            cleaned, {"generate-1": JobState(JobStatus.QUEUED)}, healthy_for=LONG, stale_after=STALE
        )
        is None
    )
    assert "lost from Redis" in verdict(cleaned)
