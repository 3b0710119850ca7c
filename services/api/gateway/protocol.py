"""The WebSocket protocol the API serves sockets with: uvicorn's own, holding less per socket.

uvicorn's `websockets-sansio` protocol (what it picks when `websockets` is installed, as here)
keeps for each socket's whole life the parsed handshake request and response with their headers
(4.4 kB; the ASGI scope has its own copy of the request's headers), an `asyncio.Queue` for the
app's `receive` and an `asyncio.Event` for `send` to wait on (4.1 kB, mostly empty deques).
This subclass lets go of the first two once the handshake is done and swaps the queue and the
event for the `Mailbox` and `Flag` of primitives.py. The rest is uvicorn's, unchanged: the
handshake, the framing, `ws_max_size` (1009), the pings and their timeout, the close codes, the
closing handshake, the 1012 on shutdown. uvicorn's wsproto protocol (35.3 kB per socket) and its
legacy websockets one (44.9 kB) both hold more than its sansio one (37.1 kB) in
bench/ws_fanout.py; this one, with the gateway's own savings, holds about 23 kB.

It also bounds what a client's control frames can make the server hold (docs/protocol.md §7):
websockets answers every ping with a pong at once, and uvicorn writes it to the transport whether
or not the peer reads, so a client that pings at line rate and never reads grew the transport's
buffer without limit. Here, once the transport's write buffer passes its high-water mark
(`pause_writing`), reading from that socket stops until the buffer drains (`resume_writing`):
the pings wait in the kernel, and the server holds at most the high-water mark (64 KiB) of
unsent frames per socket. A peer that never reads then misses the server's own keepalive pongs
and is closed by the ping timeout. (Data frames were already bounded: uvicorn pauses reading
while one waits for the app, and the gateway's replies to them are capped by its mailbox.)

It relies on five attributes of uvicorn 0.54's `WebSocketsSansIOProtocol` (`queue`, `writable`,
`request`, `response`, `read_paused`), so pyproject.toml pins uvicorn to 0.54.x; the gateway's
end-to-end tests run every socket through it, and tests/e2e/test_gateway_protocol.py checks the
rest (pings, their timeout, the frame limit, closes).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn._types import ASGIReceiveEvent, ASGISendEvent
from uvicorn.config import Config
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import ServerState
from websockets.http11 import Request

from services.api.gateway.primitives import Flag, Mailbox


class GatewayWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's `websockets-sansio` protocol without what a socket no longer needs."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        # Nothing has used them yet: the connection is not even made.
        self.queue = Mailbox[ASGIReceiveEvent]()  # type: ignore[assignment]
        self.writable = Flag()  # type: ignore[assignment]
        self.writable.set()
        self._write_paused = False

    def pause_writing(self) -> None:
        """The peer reads less than it makes us write: read nothing more from it until it
        catches up, or every ping it sends would add a pong to the buffer."""
        super().pause_writing()
        self._write_paused = True
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        super().resume_writing()
        self._write_paused = False
        if not self.read_paused:  # uvicorn's own pause (a message waiting for the app) stays
            self.transport.resume_reading()

    async def receive(self) -> ASGIReceiveEvent:
        """uvicorn's, except that reading stays paused while the write buffer is full."""
        message = await self.queue.get()
        if self.read_paused and self.queue.empty():
            self.read_paused = False
            if not self._write_paused:
                self.transport.resume_reading()
        return message

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        # Nothing reads the request again: the ASGI scope holds a copy of what the app needs.
        # websockets' parser keeps it referenced as long as the socket lives, so its headers
        # are emptied too, not only uvicorn's reference dropped.
        del self.request
        event.headers.clear()

    async def send(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if message["type"] == "websocket.accept" and self.handshake_complete:
            # The 101 response is written: uvicorn never reads it again.
            self.__dict__.pop("response", None)
