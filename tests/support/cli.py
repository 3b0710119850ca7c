"""`taskrelay` run by a test: as an operator runs it (a real process), or called in this process.

A real process (`admin`) is for what only a process shows: a dependency that is down, a running
system's answers, the log lines on stderr. Parsing, settings validation and the refusals that
need no dependency down run in this process (`InProcess`): the same entry point the console
script calls (`services.cli.main`), with the environment, arguments and streams a child would
have, without a cold interpreter's second of start-up. Both answer with a `Ran`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from harness.processes import TASKRELAY
from services.cli import main
from shared.observability import logging as process_logging


@dataclass(frozen=True)
class Ran:
    code: int
    stdout: str
    stderr: str

    @property
    def document(self) -> Any:
        """The `--json` document on stdout."""
        return json.loads(self.stdout)

    @property
    def logged(self) -> list[dict[str, Any]]:
        """The JSON log lines on stderr (TASKRELAY_LOG_FORMAT=json)."""
        return [json.loads(line) for line in self.stderr.splitlines() if line.startswith("{")]

    @property
    def actions(self) -> list[dict[str, Any]]:
        """The log lines of what the command changed (`admin_*`), in order."""
        return [line for line in self.logged if str(line.get("event")).startswith("admin_")]


def admin(env: dict[str, str], *args: str, stdin: str | None = None) -> Ran:
    """`taskrelay admin ARGS` as a real process."""
    done = subprocess.run(
        [*TASKRELAY, "admin", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return Ran(done.returncode, done.stdout, done.stderr)


class InProcess:
    """`taskrelay ARGS` called in this process, as the console script calls it: its exit status
    (argparse's `SystemExit` included) and what it printed.

    The environment is `env` alone during the test, as a child's would be. `configure_logging`
    does nothing here: it would bind this whole process's log lines, once and for good, to the
    stderr of the moment (this test's capture, closed after it). A command's stray log line
    still shows: structlog's default writes it to stdout, the standard library's to stderr,
    where the tests expect nothing or one line.
    """

    def __init__(self, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
        self._monkeypatch = monkeypatch
        self._capsys = capsys

    def __call__(self, env: Mapping[str, str], *args: str) -> Ran:
        for name in list(os.environ):
            self._monkeypatch.delenv(name)
        for name, value in env.items():
            self._monkeypatch.setenv(name, value)
        self._monkeypatch.setattr(process_logging, "_configured", True)
        self._capsys.readouterr()  # what the test printed before is not the command's
        try:
            code = main(list(args))
        except SystemExit as ended:
            code = _exit_status(ended)
        out, err = self._capsys.readouterr()
        return Ran(code, out, err)


def _exit_status(ended: SystemExit) -> int:
    """The status the interpreter would exit with (and its message, printed as it would)."""
    if ended.code is None:
        return 0
    if isinstance(ended.code, int):
        return ended.code
    print(ended.code, file=sys.stderr)
    return 1
