"""A minimal HTTP/1.1 responder for a process's probes: `/livez`, `/readyz`, `/metrics`, ...

The relay and the worker need a few read-only GET routes, not a web framework. It runs in the
process's own event loop, so every answer reflects the live state. Each connection gets one
answer and is closed. No route needs a token: none carries user data (docs/protocol.md §10).

Whoever can reach the port is not trusted to behave: a connection has `timeout` seconds (5) to
send its request and as long again to take the answer (a `/metrics` body is tens of kilobytes:
a peer that never reads would otherwise hold it, and the connection, for ever), then it is
aborted; and at most `max_connections` (32) are served at once, a connection past that closed
at once, so memory stays bounded whatever a peer does.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

Answer = tuple[int, str, bytes]
"""Status, content type, body."""
Route = Callable[[], Answer]

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}
MAX_CONNECTIONS = 32
TIMEOUT_SECONDS = 5.0


def probe_routes(ready: Callable[[], str | None], registry: CollectorRegistry) -> dict[str, Route]:
    """`/livez` (200 while the loop answers), `/readyz` (503 with the reason `ready()` gives,
    None when ready) and `/metrics` (the registry in Prometheus text)."""

    def readyz() -> Answer:
        reason = ready()
        if reason is None:
            return 200, "text/plain", b"ready\n"
        return 503, "text/plain", f"not ready: {reason}\n".encode()

    return {
        "/livez": lambda: (200, "text/plain", b"live\n"),
        "/readyz": readyz,
        "/metrics": lambda: (200, CONTENT_TYPE_LATEST, generate_latest(registry)),
    }


class ProbeServer:
    def __init__(
        self,
        routes: Mapping[str, Route],
        host: str,
        port: int,
        *,
        max_connections: int = MAX_CONNECTIONS,
        timeout: float = TIMEOUT_SECONDS,
    ) -> None:
        self._routes = dict(routes)
        self._host, self._port = host, port
        self._max_connections, self._timeout = max_connections, timeout
        self._server: asyncio.Server | None = None
        self.open_connections = 0

    @property
    def where(self) -> str:
        return f"http://{self._host}:{self._port}"

    async def start(self) -> None:
        """Listen; OSError (the port is taken, say) is the caller's to report."""
        self._server = await asyncio.start_server(self._serve, self._host, self._port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.open_connections >= self._max_connections:
            writer.transport.abort()  # past the cap: no answer, nothing held
            return
        self.open_connections += 1
        finished = False
        try:
            async with asyncio.timeout(self._timeout):
                request = await reader.readuntil(b"\r\n\r\n")
            method, path = _request_line(request)
            status, content_type, body = self._answer(method, path)
            head = (
                f"HTTP/1.1 {status} {_REASONS[status]}\r\n"
                f"Content-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\n"
                "Cache-Control: no-store\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + (b"" if method == "HEAD" else body))
            async with asyncio.timeout(self._timeout):
                await writer.drain()
            finished = True
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        finally:
            self.open_connections -= 1
            if finished:
                writer.close()
            else:  # close() would wait for a peer that reads nothing to take the rest
                writer.transport.abort()

    def _answer(self, method: str, path: str) -> Answer:
        if method not in ("GET", "HEAD"):
            return 405, "text/plain", b"method not allowed\n"
        route = self._routes.get(path)
        if route is None:
            known = ", ".join(sorted(self._routes))
            return 404, "text/plain", f"not found: try {known}\n".encode()
        return route()


def _request_line(request: bytes) -> tuple[str, str]:
    parts = request.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
    if len(parts) < 2:
        return "", ""
    path = parts[1].split("?", 1)[0]
    return parts[0].upper(), os.path.normpath(path) if path else "/"
