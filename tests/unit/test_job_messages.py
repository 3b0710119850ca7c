"""What the worker's consumer makes of a job message's body: a job, or a reason to dead-letter
it. No body may make it raise anything else (the message would stay unacked)."""

from __future__ import annotations

import json
from uuid import uuid4

import pytest

from services.worker.consumer import UnhandleableMessage, parse_job

TASK = str(uuid4())
MALFORMED = {
    "array nested 100,000 deep": b"[" * 100_000 + b"]" * 100_000,
    "object nested 100,000 deep": b'{"a":' * 100_000 + b"1" + b"}" * 100_000,
    "job nested deep": b'{"job": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "not JSON": b"\x00\x01 not json",
    "not UTF-8": b'{"job": "\xff\xfe"}',
    "a list": b"[1, 2]",
    "a string": b'"generate_content"',
    "no task_id": json.dumps({"job": "generate_content"}).encode(),
    "task_id not a UUID": json.dumps({"job": "generate_content", "task_id": [1]}).encode(),
    "unknown job": json.dumps({"job": "x" * 10_000, "task_id": TASK}).encode(),
    "job unhashable": json.dumps({"job": {"a": 1}, "task_id": TASK}).encode(),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_body_is_dead_lettered_not_raised(name: str) -> None:
    with pytest.raises(UnhandleableMessage) as refused:
        parse_job(str(uuid4()), MALFORMED[name])
    assert len(str(refused.value)) < 300  # a hostile body does not become a huge log line


def test_a_job_dispatch_is_read() -> None:
    message_id = uuid4()
    body = json.dumps({"job": "generate_content", "task_id": TASK, "items": []}).encode()
    job = parse_job(str(message_id), body)
    assert (job.message_id, str(job.task_id)) == (message_id, TASK)


def test_a_message_id_that_is_not_a_uuid_is_dead_lettered() -> None:
    with pytest.raises(UnhandleableMessage, match="not a UUID"):
        parse_job("42", json.dumps({"job": "generate_content", "task_id": TASK}).encode())
