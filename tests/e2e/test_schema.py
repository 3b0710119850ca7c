"""Schemathesis against `/schema`: generated requests, valid and not, never get a 5xx."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from shared.auth import issue_token
from tests.support.resources import SECRET

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


def test_no_server_errors(base_url: str) -> None:
    token = issue_token(SECRET, "schemathesis-user", 3600)
    result = subprocess.run(
        [
            str(SCHEMATHESIS),
            "run",
            f"{base_url}/schema/openapi.json",
            "--header",
            f"Authorization: Bearer {token}",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            "40",
            "--seed",
            "20261127",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
