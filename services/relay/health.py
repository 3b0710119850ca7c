"""`/health` and `/metrics` on the relay's port: a minimal HTTP/1.1 responder in the relay's loop.

Two read-only GET routes do not need a web framework, and running in the same event loop means
the answers always reflect the relay's live state. Each connection gets one answer and is closed.
"""

from __future__ import annotations

import asyncio
import json
import os

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.relay.state import RelayMetrics, RelayState
from shared.errors import ConfigurationError

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


class HealthServer:
    def __init__(self, state: RelayState, metrics: RelayMetrics, host: str, port: int) -> None:
        self._state, self._metrics = state, metrics
        self._host, self._port = host, port
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(self._serve, self._host, self._port)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot serve health on {self._host}:{self._port}: {exc.strerror}; "
                "choose another port with --health-port"
            ) from exc

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            method, path = _request_line(request)
            status, content_type, body = self._answer(method, path)
            head = (
                f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
                f"Content-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\n"
                "Cache-Control: no-store\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        finally:
            writer.close()

    def _answer(self, method: str, path: str) -> tuple[int, str, bytes]:
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"method not allowed\n"
        if path == "/health":
            document = self._state.health()
            status = 200 if document["status"] == "ok" else 503
            return status, "application/json", json.dumps(document).encode()
        if path == "/metrics":
            self._state.export(self._metrics)
            return 200, CONTENT_TYPE_LATEST, generate_latest(self._metrics.registry)
        return 404, "text/plain", b"not found: try /health or /metrics\n"


def _request_line(request: bytes) -> tuple[str, str]:
    parts = request.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
    if len(parts) < 2:
        return "", ""
    path = parts[1].split("?", 1)[0]
    return parts[0].upper(), os.path.normpath(path) if path else "/"
