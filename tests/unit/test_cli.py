"""The command line's refusals that need nothing running, called in this process.

A TASKRELAY_SECRET under 32 characters is refused by every command that needs it, in one line
(docs/protocol.md §2, docs/security.md); a secret of 32 is enough; a user id that is not
printable gets no token; a database URL of another scheme is refused without printing its
password; `taskrelay admin`'s bad input ends it with status 2 and one line. What only a real
process shows (a dependency down, `run`'s state directory) is in tests/e2e/test_secrets_cli.py
and tests/e2e/test_admin.py; admin's refusals that read the database, in
tests/integration/test_cli_admin.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.resources import SECRET
from tests.support.cli import InProcess, Ran

CLOSED = "127.0.0.1:1"
"""No dependency is reachable from a unit test: a command that reached for one would say so
("... is unreachable at ..."), and the test expecting another refusal would fail."""


@pytest.fixture(name="taskrelay")
def taskrelay_fixture(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> InProcess:
    return InProcess(monkeypatch, capsys)


@pytest.fixture(name="env")
def env_fixture(tmp_path: Path) -> dict[str, str]:
    """A command's environment: a valid secret, every dependency on a closed port, `run`'s
    state under this test's own directory."""
    return {
        "PATH": os.environ.get("PATH", ""),
        "XDG_RUNTIME_DIR": str(tmp_path),
        "DATABASE_URL": f"postgresql://postgres@{CLOSED}/taskrelay",
        "AMQP_URL": f"amqp://guest:guest@{CLOSED}/",
        "REDIS_URL": f"redis://{CLOSED}/0",
        "TASKRELAY_SECRET": SECRET,
        "TASKRELAY_LOG_FORMAT": "json",
    }


def one_line_failure(ran: Ran, command: str) -> str:
    assert ran.code == 1, ran
    assert ran.stdout == ""
    lines = ran.stderr.splitlines()
    assert len(lines) == 1, ran.stderr
    assert lines[0].startswith(f"taskrelay {command}: ")
    return lines[0]


@pytest.mark.parametrize(
    "args",
    [
        ["token", "alice"],
        ["api", "--port", "0"],
        ["run", "--port", "0"],
        ["demo", "--timeout", "5"],
    ],
    ids=lambda a: a[0],
)
def test_a_short_secret_is_refused_in_one_line(
    taskrelay: InProcess, env: dict[str, str], args: list[str]
) -> None:
    line = one_line_failure(taskrelay({**env, "TASKRELAY_SECRET": "s" * 31}, *args), args[0])
    assert "TASKRELAY_SECRET is 31 characters: it must be at least 32" in line
    assert "s" * 31 not in line


def test_a_secret_of_32_characters_is_enough(taskrelay: InProcess, env: dict[str, str]) -> None:
    ran = taskrelay({**env, "TASKRELAY_SECRET": "s" * 32}, "token", "alice")
    assert ran.code == 0, ran.stderr
    assert ran.stdout.count(".") == 2


def test_a_user_id_that_is_not_printable_gets_no_token(
    taskrelay: InProcess, env: dict[str, str]
) -> None:
    ran = taskrelay(env, "token", "bell\x07")
    assert ran.code == 2
    assert "1 to 255 printable characters" in ran.stderr


@pytest.mark.parametrize("command", ["migrate", "api", "relay", "worker"])
def test_a_database_url_of_another_scheme_is_refused_without_its_password(
    taskrelay: InProcess, env: dict[str, str], command: str
) -> None:
    url = "mysql://root:Pw5-wrong-scheme@127.0.0.1/x"
    ran = taskrelay(
        {**env, "DATABASE_URL": url}, command, *(["--port", "0"] if command == "api" else [])
    )
    line = one_line_failure(ran, command)
    assert "Pw" not in line
    assert "***" in line


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["tasks", "retry", "not-a-uuid"], "is not a task id"),
        (["tasks", "cancel", "123"], "is not a task id"),
        (["tasks", "retry"], "the following arguments are required: ID"),
        (["tasks", "--older-than", "10 minutes"], "is not a duration"),
        (["tasks", "--older-than", "soon"], "is not a duration"),
        (["tasks", "--status", "stuck"], "invalid choice"),
        (["outbox", "replay"], "--all-parked"),
        (["outbox", "replay", "x1"], "is not an outbox row id"),
        (["outbox", "replay", "0"], "is not an outbox row id"),
        (["dead-letters", "drop", "--force"], "unrecognized arguments: --force"),
        (["sideways"], "invalid choice"),
        ([], "the following arguments are required: WHAT"),
    ],
)
def test_bad_admin_input_exits_2_with_one_line(
    taskrelay: InProcess, env: dict[str, str], args: list[str], says: str
) -> None:
    ran = taskrelay(env, "admin", *args)
    assert ran.code == 2, ran
    assert ran.stdout == ""
    assert len(ran.stderr.splitlines()) == 1, ran.stderr
    assert ran.stderr.startswith("taskrelay admin")
    assert says in ran.stderr
