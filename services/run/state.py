"""Where `taskrelay run` leaves what `taskrelay demo` needs when the secret was generated.

The secret `run` generates for itself (when TASKRELAY_SECRET is unset) is written, readable by
this user only, to a file in the user's runtime directory, with the API's URL; `demo` reads it
when it has no TASKRELAY_SECRET of its own. The file goes when `run` stops.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class RunState:
    api_url: str
    secret: str
    pid: int


def state_path() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return Path(base) / f"taskrelay-{os.getuid()}" / "run.json"


def save(state: RunState) -> Path:
    path = state_path()
    path.parent.mkdir(mode=0o700, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"api_url": state.api_url, "secret": state.secret, "pid": state.pid}, out)
    return path


def load() -> RunState | None:
    """The state of a `taskrelay run` that is still alive, or None."""
    try:
        raw = json.loads(state_path().read_text())
        state = RunState(str(raw["api_url"]), str(raw["secret"]), int(raw["pid"]))
        os.kill(state.pid, 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state


def remove(pid: int) -> None:
    """Remove the file if it is this run's."""
    current = load()
    if current is not None and current.pid == pid:
        state_path().unlink(missing_ok=True)
