"""The broker topology outside consumers rely on (CONTRACT §11): names only, no connection."""

from __future__ import annotations

from uuid import UUID

EXCHANGE = "taskrelay"
NOTIFICATION_PREFIX = "notification."
JOB_PREFIX = "job."
GENERATE_CONTENT = "generate_content"
"""The job that generates (or regenerates) a task's content items."""


def notification_routing_key(task_id: UUID | str) -> str:
    return f"{NOTIFICATION_PREFIX}{task_id}"


def job_routing_key(name: str) -> str:
    return f"{JOB_PREFIX}{name}"


COMMITTED_AT_HEADER = "x-committed-at-us"
"""AMQP header: the outbox row's commit instant, integer microseconds since the epoch. An
integer, because AMQP tables carry a Python float as single precision (128 s steps today)."""
