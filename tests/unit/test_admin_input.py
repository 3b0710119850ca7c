"""`taskrelay admin`'s input rules and output shapes, without any server: durations and the
`--json` entries docs/protocol.md §2 fixes. Its one-line refusals with status 2 are in
tests/unit/test_cli.py."""

from __future__ import annotations

import argparse
from uuid import UUID

import pytest

from services.admin.parser import duration
from services.admin.render import age
from shared.domain import TaskSummary


@pytest.mark.parametrize(
    ("raw", "seconds"),
    [("90s", 90), ("10m", 600), ("1h30m", 5400), ("2d", 172800), ("1.5h", 5400), ("45", 45)],
)
def test_durations(raw: str, seconds: float) -> None:
    assert duration(raw) == seconds


@pytest.mark.parametrize("raw", ["m", "10x", "10 m", "-5m", "1h 30m", "ten minutes", "1e99"])
def test_bad_durations_are_refused(raw: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="is not a duration"):
        duration(raw)


def test_a_task_summary_is_the_contract_entry() -> None:
    summary = TaskSummary(UUID(int=1), "alice", "failed", 12.3456, 5, 3, 1, 2, "boom")
    assert summary.as_dict() == {
        "task_id": str(UUID(int=1)),
        "owner_id": "alice",
        "status": "failed",
        "age_seconds": 12.346,
        "items": {"total": 5, "completed": 3, "failed": 1, "pending": 1},
        "recoveries": 2,
        "error_message": "boom",
    }


def test_ages_read_at_a_glance() -> None:
    assert [age(s) for s in (None, 5.9, 65, 3 * 3600 + 7 * 60, 2 * 86400 + 5 * 3600)] == [
        "-",
        "5s",
        "1m05s",
        "3h07m",
        "2d05h",
    ]
