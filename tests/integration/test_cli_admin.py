"""`taskrelay admin`'s refusals of ids the database does not know, called in this process on
this run's database: status 2 and one line, nothing changed (docs/protocol.md §2).

Input it refuses before reading anything is in tests/unit/test_cli.py; against a running
system, and with a dependency down, in tests/e2e/test_admin.py.
"""

from __future__ import annotations

from uuid import UUID

import pytest

from harness.resources import Resources
from tests.support.cli import InProcess


@pytest.fixture(name="taskrelay")
def taskrelay_fixture(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> InProcess:
    return InProcess(monkeypatch, capsys)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["tasks", "retry", str(UUID(int=7))], "not found"),
        (["outbox", "replay", "999999999"], "is not parked"),
    ],
)
def test_an_unknown_id_exits_2_with_one_line(
    taskrelay: InProcess, resources: Resources, args: list[str], says: str
) -> None:
    ran = taskrelay(resources.env(), "admin", *args)
    assert ran.code == 2, ran
    assert ran.stdout == ""
    assert len(ran.stderr.splitlines()) == 1, ran.stderr
    assert says in ran.stderr
