"""Secrets as the command line handles them, in real processes (docs/protocol.md §3,
docs/security.md).

No URL's password is printed when the dependency it names is down, whatever form the URL gives
it in; `taskrelay run` keeps its generated secret only in a directory that is this user's alone.
What needs nothing running (a short TASKRELAY_SECRET refused in one line, a URL of another
scheme) is called in process: tests/unit/test_cli.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.processes import free_port
from harness.resources import Resources


def taskrelay(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )


def one_line_failure(done: subprocess.CompletedProcess[str], command: str) -> str:
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"taskrelay {command}: ")
    return lines[0]


CLOSED = free_port()
PASSWORD_FORMS = {
    "userinfo": f"postgresql://postgres:Pw1-userinfo@127.0.0.1:{CLOSED}/x",
    "query": f"postgresql://postgres@127.0.0.1:{CLOSED}/x?password=Pw2-query&sslmode=disable",
    "percent-encoded": f"postgresql://postgres:Pw3%40encoded@127.0.0.1:{CLOSED}/x",
    "asyncpg scheme": f"postgresql+asyncpg://postgres:Pw4-driver@127.0.0.1:{CLOSED}/x",
}


@pytest.mark.parametrize("command", ["migrate", "api", "relay", "worker"])
@pytest.mark.parametrize("form", sorted(PASSWORD_FORMS))
def test_no_database_password_is_printed(resources: Resources, command: str, form: str) -> None:
    env = resources.env(DATABASE_URL=PASSWORD_FORMS[form])
    done = taskrelay(env, command, *(["--port", "0"] if command == "api" else []))
    line = one_line_failure(done, command)
    assert "Pw" not in line
    assert "***" in line


@pytest.mark.parametrize(
    ("command", "variable", "url"),
    [
        ("api", "AMQP_URL", f"amqp://guest:Pw6-amqp@127.0.0.1:{CLOSED}/"),
        ("worker", "REDIS_URL", f"redis://:Pw7-redis@127.0.0.1:{CLOSED}/0"),
        ("worker", "REDIS_URL", f"redis://127.0.0.1:{CLOSED}/0?password=Pw8-redis-query"),
    ],
    ids=["amqp-userinfo", "redis-userinfo", "redis-query"],  # the same on every xdist worker
)
def test_no_broker_or_redis_password_is_printed(
    resources: Resources, command: str, variable: str, url: str
) -> None:
    done = taskrelay(resources.env(**{variable: url}), command)
    line = one_line_failure(done, command)
    assert "Pw" not in line


@pytest.mark.parametrize(
    "url",
    [
        f"http://demo:Pw9-userinfo@127.0.0.1:{CLOSED}",
        f"http://demo:Pw10%40encoded@127.0.0.1:{CLOSED}/",
        f"http://127.0.0.1:{CLOSED}/?password=Pw11-query",
    ],
    ids=["userinfo", "percent-encoded", "query"],  # the same on every xdist worker
)
def test_no_api_password_is_printed_by_demo(resources: Resources, url: str) -> None:
    """`taskrelay demo --url` with a password, the API down: one line, the password masked."""
    line = one_line_failure(taskrelay(resources.env(), "demo", "--url", url), "demo")
    assert "Pw" not in line
    assert "***" in line


def _run_state_dir(base: Path) -> Path:
    return base / f"taskrelay-{os.getuid()}"


def _run_unreachable(resources: Resources, base: Path) -> subprocess.CompletedProcess[str]:
    """`run` with a generated secret that stops at its first check (PostgreSQL unreachable),
    after it decided where its state goes."""
    env = resources.env(
        XDG_RUNTIME_DIR=str(base), DATABASE_URL=f"postgresql://u@127.0.0.1:{CLOSED}/x"
    )
    del env["TASKRELAY_SECRET"]
    return taskrelay(env, "run", "--port", str(free_port()), "--health-port", str(free_port()))


def _fell_back(done: subprocess.CompletedProcess[str], planted: Path, why: str) -> None:
    """`run` was not stopped by the planted directory: one line says why it is not used and
    where the state goes instead; nothing was written in it; the fallback went with `run`."""
    assert done.returncode == 1, done.stderr
    notice, failure = done.stderr.splitlines()
    assert notice.startswith(f"taskrelay run: refusing {planted}"), notice
    assert why in notice
    assert f"keeping this run's state in {planted}-" in notice
    assert failure.startswith("taskrelay run: PostgreSQL is unreachable"), failure
    assert not list(planted.parent.glob(f"{planted.name}-*"))  # removed at the end


def test_run_does_not_use_a_state_directory_open_to_others(
    resources: Resources, tmp_path: Path
) -> None:
    planted = _run_state_dir(tmp_path)
    planted.mkdir(mode=0o777)
    planted.chmod(0o777)  # as another local user would leave it for us
    _fell_back(_run_unreachable(resources, tmp_path), planted, "open to other users (0o777)")
    assert list(planted.iterdir()) == []


def test_run_does_not_use_a_state_directory_of_another_user(
    resources: Resources, tmp_path: Path
) -> None:
    if os.getuid() != 0:
        pytest.skip("making a directory another user owns needs root")
    planted = _run_state_dir(tmp_path)
    planted.mkdir(mode=0o700)
    os.chown(planted, 65534, 65534)
    _fell_back(_run_unreachable(resources, tmp_path), planted, "belongs to uid 65534, not to you")
    assert list(planted.iterdir()) == []


def test_run_never_follows_a_symlinked_state_directory(
    resources: Resources, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "attacker-readable"
    elsewhere.mkdir(mode=0o700)
    planted = _run_state_dir(tmp_path)
    planted.symlink_to(elsewhere)
    _fell_back(_run_unreachable(resources, tmp_path), planted, "is not a plain directory")
    assert list(elsewhere.iterdir()) == []
