"""The broker topology outside consumers rely on (protocol §11): names only, no connection."""

from __future__ import annotations

from collections.abc import Mapping
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

SCHEMA_VERSION_HEADER = "x-schema-version"
"""AMQP header: the version of the message's shape (integer). A change of shape publishes the
new version beside the old until every consumer reads it (docs/operations.md)."""
SCHEMA_VERSION = 1
"""The version the relay publishes today (docs/protocol.md §11)."""
KNOWN_SCHEMA_VERSIONS = frozenset({SCHEMA_VERSION})
"""The versions taskrelay's own consumers (the gateway, the worker) know how to read."""


def unknown_schema_version(headers: Mapping[str, object] | None) -> str | None:
    """Why a message's shape cannot be read (its `x-schema-version` is not one we know), or
    None when it can. A message without the header was published before versions existed: a
    relay of an older release, still draining during a rolling upgrade, so it is version 1."""
    version = (headers or {}).get(SCHEMA_VERSION_HEADER, SCHEMA_VERSION)
    if type(version) is int and version in KNOWN_SCHEMA_VERSIONS:
        return None
    known = ", ".join(map(str, sorted(KNOWN_SCHEMA_VERSIONS)))
    return f"unknown {SCHEMA_VERSION_HEADER} {version!r}: this consumer reads {known}"
