"""Spans leave over OTLP only when asked: processes started with OTEL_EXPORTER_OTLP_ENDPOINT (and
the `otlp` extra installed) send their spans to a real OTLP/HTTP receiver (here a plain HTTP
server that keeps what it is sent): the span of a request under the request's own trace id,
and, for a retry, the relay's publish, the worker's process and item spans and the gateway's
delivery spans, each from its own process, all under that same trace id."""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from harness.processes import free_port, start_api
from harness.relay import start_relay
from harness.resources import SECRET, Resources
from harness.wait import wait_until
from harness.worker import start_worker
from harness.ws import Watch
from shared.service.auth import issue_token
from tests.e2e.conftest import auth

pytestmark = pytest.mark.slow
pytest.importorskip("opentelemetry.exporter.otlp.proto.http", reason="the otlp extra")


class Receiver(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.bodies: list[bytes] = []

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.path == "/v1/traces":
            self.server.bodies.append(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture(name="receiver")
def receiver_fixture() -> Iterator[Receiver]:
    receiver = Receiver()
    thread = threading.Thread(target=receiver.serve_forever, daemon=True)
    thread.start()
    yield receiver
    receiver.shutdown()
    receiver.server_close()


async def test_a_request_span_is_exported_under_its_trace_id(
    resources: Resources, receiver: Receiver
) -> None:
    trace_id = secrets.token_hex(16)
    env = resources.env(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY="200"
    )
    with start_api(env, name="api-otlp") as api:
        base_url = f"http://127.0.0.1:{api.port}"  # type: ignore[attr-defined]
        headers = {**auth("otlp"), "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
        async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
            answer = await client.get(f"/api/v1/tasks/{secrets.token_hex(16)}", headers=headers)
        assert answer.status_code == 404

        async def exported() -> bool:
            return any(bytes.fromhex(trace_id) in body for body in receiver.bodies)

        await wait_until(exported, within=30, what="the request's span at the OTLP receiver")
    spans = b"".join(receiver.bodies)
    assert b"taskrelay-api" in spans  # the service name
    assert b"HTTP GET" in spans


def exported_spans(receiver: Receiver) -> list[tuple[str, str, str, str]]:
    """(service, span name, kind, trace id) of every span the receiver was sent."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.proto.trace.v1.trace_pb2 import Span

    found = []
    for body in list(receiver.bodies):
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource_spans in request.resource_spans:
            service = next(
                a.value.string_value
                for a in resource_spans.resource.attributes
                if a.key == "service.name"
            )
            for scope in resource_spans.scope_spans:
                for span in scope.spans:
                    kind = Span.SpanKind.Name(span.kind).removeprefix("SPAN_KIND_")
                    found.append((service, span.name, kind, span.trace_id.hex()))
    return found


async def test_the_relay_worker_and_gateway_spans_share_the_requests_trace_id(
    resources: Resources, receiver: Receiver
) -> None:
    trace_id = secrets.token_hex(16)
    env = resources.env(
        OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
        OTEL_BSP_SCHEDULE_DELAY="200",
        TASKRELAY_CONTENT_GENERATOR="harness.generators:counting",
    )
    user = "traced"
    with contextlib.ExitStack() as stack:
        api = stack.enter_context(start_api(env, name="api-spans"))
        stack.enter_context(start_relay(env, name="relay-spans"))
        stack.enter_context(start_worker(env, 1, name="worker-spans", metrics_port=free_port()))
        base_url = f"http://127.0.0.1:{api.port}"  # type: ignore[attr-defined]
        async with httpx.AsyncClient(base_url=base_url, timeout=30, headers=auth(user)) as client:
            body = {
                "roadmap_id": "spans",
                "concepts": [{"concept_id": c, "title": c} for c in ("ok-1", "fail-1")],
                "content_types": ["quiz"],
            }
            task_id = (await client.post("/api/v1/tasks", json=body)).json()["task_id"]
            watch = await Watch.open(base_url, task_id, issue_token(SECRET, user, 600))
            await _status(client, task_id, "partial_failure")
            traceparent = f"00-{trace_id}-{secrets.token_hex(8)}-01"
            retried = await client.post(
                f"/api/v1/tasks/{task_id}/retry", headers={"traceparent": traceparent}
            )
            assert retried.status_code == 202, retried.text
            final = await _status(client, task_id, "completed")
            await watch.wait_seq(final["seq"], within=60)
            await watch.close()
            wanted = {
                ("taskrelay-api", "HTTP POST", "SERVER"),
                ("taskrelay-relay", "publish taskrelay", "PRODUCER"),
                ("taskrelay-worker", "process taskrelay.jobs", "CONSUMER"),
                ("taskrelay-worker", "generate_content", "INTERNAL"),
                ("taskrelay-worker", "generate_content item", "INTERNAL"),
                ("taskrelay-api", "process taskrelay.gateway", "CONSUMER"),
            }

            async def all_exported() -> set[tuple[str, str, str]] | None:
                seen = {s[:3] for s in exported_spans(receiver) if s[3] == trace_id}
                return seen if wanted <= seen else None

            await wait_until(all_exported, within=30, what=f"every hop's span of {wanted}")


async def _status(client: httpx.AsyncClient, task_id: str, status: str) -> dict[str, Any]:
    async def reached() -> dict[str, Any] | None:
        view: dict[str, Any] = (await client.get(f"/api/v1/tasks/{task_id}")).json()
        return view if view["status"] == status else None

    found: dict[str, Any] = await wait_until(reached, within=90, what=f"status {status}")
    return found
