"""Schemathesis against `/schema`: generated requests, valid and not, never get a 5xx.

Besides what the schema describes, the bodies include JSON nested far past 32 levels, strings
that are not UTF-8 and byte-level garbage (`tests/support/schemathesis_hooks.py`).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from shared.auth import issue_token
from tests.support.resources import SECRET

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
ROOT = Path(__file__).resolve().parents[2]


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
        timeout=600,
        cwd=ROOT,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "SCHEMATHESIS_HOOKS": "tests.support.schemathesis_hooks",
        },
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
