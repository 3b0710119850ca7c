"""Protocol §10 and §10a end to end: real api, relay and worker processes do real work (a task
that partly fails, watched on a WebSocket, retried with a known `traceparent`), then:

- an outside consumer bound to the exchange finds the trace id in the headers of the retry's job
  message and of every notification the retry and its job wrote;
- the processes' own log lines name it as `trace_id` (the API's access line, the worker's
  consumer and its RQ job);
- each process's `/metrics`, scraped over HTTP, shows what was done, `/livez` and `/readyz`
  answer 200, and every metric the Grafana dashboard queries is served by one of them.
"""

from __future__ import annotations

import json
import re
import secrets
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.processes import Process, free_port, start_api, start_together, stop_all
from harness.relay import start_relay
from harness.resources import SECRET, Resources
from harness.wait import wait_until
from harness.worker import log_lines, start_worker
from harness.ws import Watch
from shared.domain.messages import COMMITTED_AT_HEADER
from shared.service.auth import issue_token
from tests.e2e.conftest import auth
from tests.support.relay import Ledger

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "taskrelay.json"
USER = "observer"
TRACE_ID = secrets.token_hex(16)
TRACEPARENT = f"00-{TRACE_ID}-{secrets.token_hex(8)}-01"


@dataclass
class System:
    api: Process
    api_port: int
    relay: Process
    relay_port: int
    worker: Process
    worker_port: int


@dataclass
class Demo:
    task_id: str
    retry_seq: int
    ledger: Ledger
    watch: Watch
    scrapes: dict[str, str]


@pytest.fixture(name="resources", scope="module")
def resources_fixture(own: Resources) -> Resources:
    """This module's own (tests/e2e/conftest.py): its worker finds no other module's tasks
    waiting, so the retry's job is not handed back between slices (a handback writes a job
    message of its own, under the same trace)."""
    return own


@pytest.fixture(name="system", scope="module")
def system_fixture(resources: Resources) -> Iterator[System]:
    env = resources.env(TASKRELAY_CONTENT_GENERATOR="harness.generators:counting")
    relay_port, worker_port = free_port(), free_port()
    api, relay, worker = start_together(
        lambda: start_api(env, name="api-observed"),
        lambda: start_relay(env, name="relay-observed", port=relay_port),
        lambda: start_worker(env, processes=2, name="worker-observed", metrics_port=worker_port),
    )
    try:
        yield System(api, api.port, relay, relay_port, worker, worker_port)  # type: ignore[attr-defined]
    finally:
        stop_all([worker, relay, api])


@pytest.fixture(name="base_url", scope="module")
def base_url_fixture(system: System) -> str:
    return f"http://127.0.0.1:{system.api_port}"


@pytest.fixture(name="client", scope="module")
async def client_fixture(base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
        yield client


@pytest.fixture(name="demo", scope="module")
async def demo_fixture(
    system: System, resources: Resources, client: httpx.AsyncClient, base_url: str
) -> AsyncIterator[Demo]:
    ledger = await Ledger().open(resources.amqp_url)
    body = {
        "roadmap_id": "observed",
        "concepts": [{"concept_id": c, "title": c} for c in ("ok-1", "ok-2", "fail-1")],
        "content_types": ["quiz"],
    }
    created = await client.post("/api/v1/tasks", json=body, headers=auth(USER))
    assert created.status_code == 201, created.text
    task_id = created.json()["task_id"]
    watch = await Watch.open(base_url, task_id, issue_token(SECRET, USER, 3600))
    await _wait_status(client, task_id, "partial_failure")
    retried = await client.post(
        f"/api/v1/tasks/{task_id}/retry", headers={**auth(USER), "traceparent": TRACEPARENT}
    )
    assert retried.status_code == 202, retried.text
    retry_seq = retried.json()["task"]["seq"]
    final = await _wait_status(client, task_id, "completed")
    await watch.wait_seq(final["seq"], within=60)
    await wait_until(
        lambda: _has_seq(ledger, task_id, final["seq"]), within=60, what="the final notification"
    )
    scrapes = {
        "api": _get(f"http://127.0.0.1:{system.api_port}/metrics")[1],
        "relay": _get(f"http://127.0.0.1:{system.relay_port}/metrics")[1],
        "worker": _get(f"http://127.0.0.1:{system.worker_port}/metrics")[1],
    }
    try:
        yield Demo(task_id, retry_seq, ledger, watch, scrapes)
    finally:
        await watch.connection.close()
        await ledger.close()


async def test_retry_trace_reaches_job_and_every_notification_it_causes(demo: Demo) -> None:
    mine = [d for d in demo.ledger.deliveries if d.task_id == demo.task_id]
    jobs = [d for d in mine if d.routing_key.startswith("job.")]
    retry_jobs = [d for d in jobs if _trace_of(d.headers) == TRACE_ID]
    assert len({d.message_id for d in retry_jobs}) == 1, [(d.body, d.headers) for d in jobs]
    assert retry_jobs[0].body["task_id"] == demo.task_id
    caused = sorted(
        (d for d in mine if d.seq is not None and d.seq >= demo.retry_seq), key=lambda d: d.seq
    )
    steps = [d.body["step"] for d in caused]
    assert steps[0] == "content_retry_queued"  # written by the API
    assert "content_item_completed" in steps  # written by the job, in a work horse
    assert steps[-1] == "content_generation_completed"
    for delivery in caused:
        assert _trace_of(delivery.headers) == TRACE_ID, (delivery.body, delivery.headers)
    # The create request brought no traceparent: its work got a trace of its own.
    earlier = [d for d in mine if d not in caused and d not in retry_jobs]
    assert earlier
    first_traces = {_trace_of(d.headers) for d in earlier}
    assert len(first_traces) == 1
    assert None not in first_traces
    assert TRACE_ID not in first_traces


async def test_messages_carry_their_rows_commit_instant_to_the_microsecond(
    demo: Demo, resources: Resources
) -> None:
    """Where the gateway's delivery latency starts: exact, not rounded by the AMQP encoding."""
    mine = {d.message_id: d for d in demo.ledger.deliveries if d.task_id == demo.task_id}
    conn = await asyncpg.connect(resources.database_url)
    try:
        rows = await conn.fetch(
            "SELECT message_id::text AS id,"
            " (extract(epoch FROM created_at) * 1000000)::bigint AS micros"
            " FROM outbox WHERE message_id = ANY($1::uuid[])",
            list(mine),
        )
    finally:
        await conn.close()
    assert len(rows) == len(mine)
    for row in rows:
        stamp = mine[row["id"]].headers[COMMITTED_AT_HEADER]
        assert isinstance(stamp, int)
        assert abs(stamp - row["micros"]) <= 1, (stamp, row["micros"])


async def test_log_lines_of_the_retry_name_its_trace(demo: Demo, system: System) -> None:
    wanted = {"job_message_acked", "content_job_done", "task_status_updated"}

    async def worker_lines() -> list[dict[str, object]]:
        # Output reaches the test through a reader thread: poll, as for any other effect.
        lines = [line for line in log_lines(system.worker) if line.get("trace_id") == TRACE_ID]
        return lines if wanted <= {str(line["event"]) for line in lines} else []

    async def access_lines() -> list[dict[str, object]]:
        return [
            line
            for line in log_lines(system.api)
            if line.get("event") == "http_request" and line.get("trace_id") == TRACE_ID
        ]

    lines = await wait_until(worker_lines, what=f"the worker's lines naming {sorted(wanted)}")
    processes = {str(line.get("process")) for line in lines}
    assert {"worker", "worker-rq"} <= processes
    access = await wait_until(access_lines, what="the API's access line of the retry")
    assert len(access) == 1, access
    assert access[0]["status"] == 202
    assert access[0]["route"] == "/api/v1/tasks/{task_id}/retry"
    assert isinstance(access[0]["duration_ms"], float)


async def test_api_access_line_redacts_the_token(system: System, base_url: str) -> None:
    token = issue_token(SECRET, USER, 3600)
    async with httpx.AsyncClient(base_url=base_url) as client:
        await client.get("/tasks/00000000-0000-0000-0000-000000000000", params={"token": token})

    async def access_lines() -> list[dict[str, object]]:
        # The line is written as the response goes out and read from the API's output by a
        # reader thread: it can come a moment after the answer (seen in CI).
        return [
            line
            for line in log_lines(system.api)
            if line.get("event") == "http_request"
            and str(line.get("path", "")).startswith("/tasks/")
        ]

    lines = await wait_until(access_lines, what="the API's access line for /tasks/")
    assert all(line["query"] == "token=***" for line in lines), lines
    assert token not in system.api.output()


async def test_each_process_serves_what_it_did(demo: Demo) -> None:
    api, relay, worker = (_samples(demo.scrapes[name]) for name in ("api", "relay", "worker"))
    frames = len([f for f in demo.watch.frames if f["type"] == "progress"])
    assert frames >= 3
    assert _value(api, "taskrelay_gateway_delivery_seconds_count") >= frames
    assert _value(api, "taskrelay_gateway_sockets") >= 1
    assert _value(api, "taskrelay_gateway_watched_tasks") >= 1
    assert _value(api, "taskrelay_gateway_frames_sent_total", type="progress") >= frames
    retry_route = "/api/v1/tasks/{task_id}/retry"
    assert _value(api, "taskrelay_http_requests_total", route=retry_route, status="202") >= 1
    assert _value(api, "taskrelay_http_request_seconds_count", route=retry_route) >= 1

    assert _value(relay, "taskrelay_relay_publish_latency_seconds_count") >= frames
    assert _value(relay, "taskrelay_relay_partitions_owned") >= 1
    assert 0 <= _value(relay, "taskrelay_relay_seconds_since_last_publish") < 600
    assert _value(relay, "taskrelay_relay_published_total", kind="notification") >= frames

    assert _value(worker, "taskrelay_worker_items_total", outcome="completed") >= 3
    assert _value(worker, "taskrelay_worker_items_total", outcome="failed") >= 1
    assert _value(worker, "taskrelay_worker_item_seconds_count") >= 4
    assert _value(worker, "taskrelay_worker_job_messages_total", outcome="acked") >= 2
    assert "taskrelay_worker_recovered_tasks_total" in demo.scrapes["worker"] or (
        "taskrelay_worker_recovered_tasks" in demo.scrapes["worker"]
    )


async def test_every_process_is_live_and_ready(system: System) -> None:
    for port in (system.api_port, system.relay_port, system.worker_port):
        for probe in ("livez", "readyz"):
            status, body = _get(f"http://127.0.0.1:{port}/{probe}")
            assert status == 200, (port, probe, body)


async def test_every_dashboard_metric_is_served(demo: Demo) -> None:
    served = set()
    for text in demo.scrapes.values():
        served |= {sample[0] for sample in _samples(text)}
    queried = dashboard_metrics(json.loads(DASHBOARD.read_text()))
    assert len(queried) >= 15
    missing = sorted(queried - served)
    assert not missing, missing


def dashboard_metrics(dashboard: dict[str, Any]) -> set[str]:
    """Every `taskrelay_*` series name in the dashboard's PromQL expressions."""
    names: set[str] = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            names |= set(re.findall(r"\btaskrelay_[a-z_]+", target["expr"]))
    return names


# --- helpers --------------------------------------------------------------------------------


async def _wait_status(client: httpx.AsyncClient, task_id: str, status: str) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        view: dict[str, Any] = (
            await client.get(f"/api/v1/tasks/{task_id}", headers=auth(USER))
        ).json()
        return view if view["status"] == status else None

    result: dict[str, Any] = await wait_until(reached, within=90, what=f"status {status}")
    return result


async def _has_seq(ledger: Ledger, task_id: str, seq: int) -> bool:
    return any(d.task_id == task_id and d.seq == seq for d in ledger.deliveries)


def _trace_of(headers: dict[str, Any]) -> str | None:
    value = headers.get("traceparent")
    if isinstance(value, bytes):
        value = value.decode()
    return value.split("-")[1] if isinstance(value, str) and value.count("-") == 3 else None


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


Sample = tuple[str, dict[str, str], float]


def _samples(text: str) -> list[Sample]:
    return [
        (s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def _value(samples: list[Sample], name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels`."""
    matching = [v for n, ls, v in samples if n == name and labels.items() <= ls.items()]
    assert matching, f"{name}{labels} is not served"
    return sum(matching)


async def test_a_worker_whose_metrics_port_is_taken_warns_once_and_works_on(
    system: System, resources: Resources, client: httpx.AsyncClient
) -> None:
    """Last in this module: it stops the module's worker so that the second one does the work."""
    env = resources.env(TASKRELAY_CONTENT_GENERATOR="harness.generators:counting")
    second = start_worker(env, name="worker-second", metrics_port=system.worker_port)
    try:
        system.worker.stop()
        body = {"roadmap_id": "second", "concepts": [{"concept_id": "a", "title": "A"}]}
        created = await client.post("/api/v1/tasks", json=body, headers=auth(USER))
        assert created.status_code == 201, created.text
        await _wait_status(client, created.json()["task_id"], "completed")
        events = [str(line["event"]) for line in log_lines(second)]
        assert events.count("worker_metrics_port_unavailable") == 1
        assert "worker_metrics_serving" not in events
    finally:
        second.stop()
