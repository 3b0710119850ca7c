"""Start `taskrelay relay` processes and read their `/health`, for the tests and the benchmarks.

A relay is ready once its `/health` answers; `health(port, role="active")` is the check a wait
polls until the relay says what the test expects.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

from harness.processes import Process, free_port
from harness.wait import wait_until_sync


@dataclass(frozen=True)
class Health:
    """One answer of a relay's /health: its HTTP status (503 while a dependency is down)."""

    code: int
    document: dict[str, Any]

    def __getitem__(self, field: str) -> Any:
        return self.document[field]

    def get(self, field: str) -> Any:
        return self.document.get(field)


def health(port: int, **expected: object) -> Health | None:
    """The relay's /health, or None if it does not answer or a field differs from `expected`
    (a wait passes `role="active"`, say, and polls until it holds)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
            answer = Health(response.status, json.load(response))
    except urllib.error.HTTPError as error:
        try:
            answer = Health(error.code, json.load(error))
        except ValueError:  # not the relay's JSON yet: it answers all the same
            answer = Health(error.code, {})
    except OSError:
        return None
    if any(answer.get(field) != value for field, value in expected.items()):
        return None
    return answer


def start_relay(env: dict[str, str], name: str = "relay", port: int | None = None) -> Process:
    """A relay subprocess whose /health answers; `.port` is its health port."""
    port = port or free_port()
    proc = Process(["relay", "--health-port", str(port)], env, name)
    proc.port = port  # type: ignore[attr-defined]
    try:
        wait_until_sync(
            lambda: health(port) is not None or not proc.alive(),
            within=30,
            what=f"relay {name} health on port {port}",
        )
        assert proc.alive(), f"relay {name} exited at start-up:\n{proc.output()}"
    except BaseException:
        proc.stop()
        raise
    return proc
