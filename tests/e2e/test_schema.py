"""The OpenAPI document at `/schema`: Schemathesis's generated requests, valid and not, never get
a 5xx; and every error status each route can answer is documented with the error schema.

Besides what the schema describes, the bodies include JSON nested far past 32 levels, strings
that are not UTF-8 and byte-level garbage (`tests/support/schemathesis_hooks.py`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from importlib.metadata import version
from pathlib import Path

from harness.resources import SECRET
from shared.service.auth import issue_token

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


def test_every_error_status_is_documented_with_the_error_schema(base_url: str) -> None:
    with urllib.request.urlopen(f"{base_url}/schema/openapi.json", timeout=10) as response:
        document = json.load(response)
    assert document["info"]["version"] == version("taskrelay")
    expected = {
        ("post", "/api/v1/tasks"): {400, 401, 409, 413, 415, 422, 429, 503},
        ("get", "/api/v1/tasks/{task_id}"): {400, 401, 404, 429, 503},
        ("post", "/api/v1/tasks/{task_id}/cancel"): {400, 401, 404, 409, 413, 415, 422, 429, 503},
        ("post", "/api/v1/tasks/{task_id}/retry"): {400, 401, 404, 409, 413, 415, 422, 429, 503},
        ("get", "/api/v1/tasks/{task_id}/items"): {400, 401, 404, 503},
    }
    for (method, path), statuses in expected.items():
        responses = document["paths"][path][method]["responses"]
        assert statuses <= {int(code) for code in responses}, (method, path, sorted(responses))
        for status in statuses:
            schema = responses[str(status)]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorView"}, (path, status)
    error_body = document["components"]["schemas"]["ErrorView"]
    assert {"status_code", "detail"} <= set(error_body["required"])
