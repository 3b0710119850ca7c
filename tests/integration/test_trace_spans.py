"""Spans on every hop (OpenTelemetry's messaging conventions), with the SDK's in-memory
exporter: one retry goes through the API, the relay, the worker's consumer, the RQ job and
the gateway, all in one process of their own (`tests/support/traced_run.py`), and its spans
form ONE trace under the request's trace id, from the HTTP retry to the gateway's delivery
of the last item's notification, with no span whose parent is missing."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from harness import resources as res
from harness.resources import Resources

pytest.importorskip("opentelemetry.sdk", reason="the otlp extra (the SDK)")

Span = dict[str, Any]


@pytest.fixture(name="isolated")
def isolated_fixture() -> Iterator[Resources]:
    """Resources of this test alone: its relay publishes only this test's rows."""
    with res.isolated("spans") as resources:
        yield resources


def traced_run(resources: Resources, trace_id: str) -> tuple[dict[str, Any], list[Span]]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.traced_run", trace_id],
        env=resources.env(TASKRELAY_LOG_LEVEL="WARNING"),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-5000:]
    first, *rest = (json.loads(line) for line in done.stdout.splitlines() if line.startswith("{"))
    return first, rest


def ancestry(span: Span, by_id: dict[str, Span]) -> list[str]:
    """The names from `span` up to the root of its trace; fails on a missing parent (a gap)."""
    names = [span["name"]]
    while span["kind"] != "SERVER":
        parent = by_id.get(span["parent_id"])
        assert parent is not None, f"gap: the parent of {span['name']} was not recorded"
        names.append(parent["name"])
        span = parent
    return names


def test_one_trace_from_the_retry_to_the_last_items_delivery(isolated: Resources) -> None:
    trace_id = secrets.token_hex(16)
    run, spans = traced_run(isolated, trace_id)
    task_id, final = run["task_id"], run["final_seq"]
    ours = [s for s in spans if s["trace_id"] == trace_id]
    by_id = {s["span_id"]: s for s in ours}
    (request,) = [s for s in ours if s["kind"] == "SERVER"]
    assert request["name"] == "HTTP POST"
    for span in ours:  # every span of the trace hangs under the request: no gap anywhere
        assert ancestry(span, by_id)[-1] == "HTTP POST"

    kinds = {(s["name"], s["kind"]) for s in ours}
    assert {
        ("publish taskrelay", "PRODUCER"),
        ("process taskrelay.jobs", "CONSUMER"),
        ("generate_content", "INTERNAL"),
        ("generate_content item", "INTERNAL"),
        ("process taskrelay.gateway", "CONSUMER"),
    } <= kinds
    items = [s for s in ours if s["name"] == "generate_content item"]
    assert len(items) == 3  # the retried (failed) items, each once
    assert {s["attributes"]["taskrelay.task_id"] for s in items} == {task_id}

    dispatch = [
        s
        for s in ours
        if s["name"] == "publish taskrelay"
        and s["attributes"]["messaging.rabbitmq.destination.routing_key"].startswith("job.")
    ]
    assert dispatch[0]["parent_id"] == request["span_id"]  # the row the request wrote
    assert dispatch[0]["attributes"]["messaging.system"] == "rabbitmq"
    assert dispatch[0]["attributes"]["messaging.operation.type"] == "send"

    deliveries = {
        s["attributes"]["taskrelay.seq"]: s
        for s in ours
        if s["name"] == "process taskrelay.gateway"
    }
    # Every notification from the retry's own to the completion, each delivered in it.
    first = min(deliveries)
    assert sorted(deliveries) == list(range(first, final + 1))
    assert len(deliveries) >= 1 + 3 + 1  # the retry, each item, the completion
    assert ancestry(deliveries[first], by_id) == [
        "process taskrelay.gateway",
        "publish taskrelay",
        "HTTP POST",
    ]
    for span in deliveries.values():
        attributes = span["attributes"]
        assert attributes["messaging.rabbitmq.destination.routing_key"] == f"notification.{task_id}"
        assert attributes["taskrelay.gateway.sockets"] == 1
    assert ancestry(deliveries[run["last_item_seq"]], by_id) == [
        "process taskrelay.gateway",
        "publish taskrelay",
        "generate_content",
        "process taskrelay.jobs",
        "publish taskrelay",
        "HTTP POST",
    ]
