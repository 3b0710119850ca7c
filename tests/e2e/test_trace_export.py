"""Spans leave over OTLP only when asked: an API started with OTEL_EXPORTER_OTLP_ENDPOINT (and
the `otlp` extra installed) sends the span of a request, under the request's own trace id, to a
real OTLP/HTTP receiver; the receiver here is a plain HTTP server that keeps what it is sent."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.e2e.conftest import auth
from tests.support.processes import start_api
from tests.support.resources import Resources
from tests.support.wait import wait_until

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
