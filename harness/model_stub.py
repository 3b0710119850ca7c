"""A chat-completions server on 127.0.0.1 that misbehaves on purpose, for the `openai` generator.

It speaks just enough of the OpenAI API (`POST /v1/chat/completions`, HTTP/1.1 keep-alive) for
the official SDK, and answers every request after `delay` seconds with what its `script` says
for that request: a normal answer, a status with headers (429 with or without `Retry-After`,
500), a malformed body, a reset connection, or a slow answer. The script is given the request's
user message and how many requests with that message came before (so "the first one is
rate-limited" is easy to say), and every request is recorded with when it arrived and which key
it carried, and the most requests ever in flight at once (`peak`) is kept: what the tests check.

It runs its own event loop in a thread, so tests that block (waiting on subprocesses) do not
stall it, and worker processes reach it like any provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Reply:
    """What the stub answers one request with."""

    status: int = 200
    body: bytes | None = None
    """None: a normal chat-completions answer (for a 200) or an OpenAI-style error body."""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float | None = None
    """Seconds before answering; None: the stub's own `delay`."""
    reset: bool = False
    """Cut the connection with a TCP reset instead of answering."""


@dataclass(frozen=True)
class Seen:
    user: str
    arrived: float
    """`time.monotonic()` when the request was read."""
    authorization: str


Script = Callable[[str, int], Reply]
"""(the user message, how many earlier requests carried it) -> the reply."""


def answers(_user: str, _earlier: int) -> Reply:
    return Reply()


class ModelStub:
    def __init__(self, delay: float = 0.0, script: Script = answers) -> None:
        self.delay, self.script = delay, script
        self.seen: list[Seen] = []
        self.in_flight = 0
        self.peak = 0
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        """The base URL, as `OPENAI_BASE_URL` takes it."""
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> ModelStub:
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        started.result(timeout=10)
        return self

    def __exit__(self, *_: object) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def requests_for(self, marker: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if marker in s.user]

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for connection in self._connections:
            connection.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        this = asyncio.current_task()
        assert this is not None
        self._connections.add(this)
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    return
                if not await self._answer(request, reader, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()
            self._connections.discard(this)

    async def _answer(
        self,
        request: tuple[dict[str, str], bytes],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """Answer one request; False when the connection is done with."""
        headers, body = request
        user = _user_message(body)
        with self._lock:
            earlier = sum(1 for s in self.seen if s.user == user)
            self.seen.append(Seen(user, time.monotonic(), headers.get("authorization", "")))
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
        try:
            reply = self.script(user, earlier)
            wait = self.delay if reply.delay is None else reply.delay
            if not await _wait_unless_gone(reader, wait):
                return False  # the client gave up (its timeout): nobody to answer
            if reply.reset:
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                return False
            writer.write(_response(reply, user))
            await writer.drain()
            return True
        finally:
            with self._lock:
                self.in_flight -= 1


async def _read_request(reader: asyncio.StreamReader) -> tuple[dict[str, str], bytes] | None:
    head = await reader.readuntil(b"\r\n\r\n") if not reader.at_eof() else b""
    if not head:
        return None
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name:
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return headers, body


async def _wait_unless_gone(reader: asyncio.StreamReader, seconds: float) -> bool:
    """Sleep `seconds`; False as soon as the client closes the connection meanwhile."""
    if seconds <= 0:
        return True
    gone = asyncio.ensure_future(reader.read(1))
    try:
        done, _ = await asyncio.wait({gone}, timeout=seconds)
    finally:
        gone.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await gone  # the reader is free for the next request only once this has ended
    return not done


def _user_message(body: bytes) -> str:
    try:
        messages = json.loads(body)["messages"]
        return str(next(m["content"] for m in messages if m.get("role") == "user"))
    except (ValueError, KeyError, TypeError, StopIteration):
        return ""


def _response(reply: Reply, user: str) -> bytes:
    if reply.body is not None:
        payload = reply.body
    elif reply.status == 200:
        payload = json.dumps(_completion(user)).encode()
    else:
        error = {"message": f"stub says {reply.status}", "type": "stub_error"}
        payload = json.dumps({"error": error}).encode()
    reason = {200: "OK", 429: "Too Many Requests", 500: "Internal Server Error"}
    head = [f"HTTP/1.1 {reply.status} {reason.get(reply.status, 'Status')}"]
    extra = {"content-type": "application/json", **reply.headers}
    head += [f"{k}: {v}" for k, v in extra.items()]
    head += [f"content-length: {len(payload)}", "connection: keep-alive", "", ""]
    return "\r\n".join(head).encode() + payload


def _completion(user: str) -> dict[str, Any]:
    content = f"Stub answer to: {user}"
    usage = {"prompt_tokens": len(user.split()), "completion_tokens": len(content.split())}
    return {
        "id": "chatcmpl-stub",
        "object": "chat.completion",
        "created": 0,
        "model": "stub",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
            }
        ],
        "usage": {**usage, "total_tokens": sum(usage.values())},
    }
