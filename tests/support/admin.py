"""`taskrelay admin` run as an operator runs it: a real process, its exit status, its output."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from typing import Any

from tests.support.processes import TASKRELAY


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
    done = subprocess.run(
        [*TASKRELAY, "admin", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return Ran(done.returncode, done.stdout, done.stderr)
