"""The socket's transport under the gateway, end to end: what `GatewayWebSocketProtocol` keeps.

The API serves sockets with a trimmed subclass of uvicorn's protocol (services/api/gateway/
protocol.py) that replaces its receive queue and its writable event. These tests hold it to what
uvicorn's own does, through a real `taskrelay api` with pings every half second: a client that
answers pings stays, one that does not is dropped with 1011; a burst of client frames is read
in full (reading pauses and resumes around the queue); a socket that ends, with a close frame or
without, ends its handler on the server. Clients that must not answer pings use websockets'
sans-I/O protocol, which writes nothing unless told to.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit
from uuid import UUID

import httpx
import pytest
from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Response
from websockets.uri import parse_uri

from harness.processes import start_api
from harness.resources import SECRET, Resources
from harness.wait import wait_until
from harness.ws import Watch
from shared.adapters.postgres import UnitOfWorkFactory
from shared.service.auth import issue_token
from tests.support import tasks

pytestmark = pytest.mark.slow

PING_SECONDS = 0.5


class RawClient:
    """A socket on websockets' sans-I/O client: it records frames, and answers pings if asked."""

    def __init__(self, url: str, answer_pings: bool) -> None:
        self.protocol = ClientProtocol(parse_uri(url))
        self.answer_pings = answer_pings
        self.texts: list[dict[str, object]] = []
        self.pings = 0
        self.accepted = False
        self.ended = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, url: str, *, answer_pings: bool) -> RawClient:
        client = cls(url, answer_pings)
        parts = urlsplit(url)
        reader, client._writer = await asyncio.open_connection(parts.hostname, parts.port)
        client.protocol.send_request(client.protocol.connect())
        client._flush()
        client._reader_task = asyncio.create_task(client._read(reader))

        async def accepted() -> bool:
            return client.accepted

        await wait_until(accepted, within=10, what="the handshake's 101")
        return client

    @property
    def close_code(self) -> int | None:
        received = self.protocol.close_rcvd
        return None if received is None else received.code

    def send_text(self, *texts: str) -> None:
        """Write the frames in one go."""
        for text in texts:
            self.protocol.send_text(text.encode())
        self._flush()

    def vanish(self) -> None:
        """Close the TCP connection without a close frame, as a crashed browser would."""
        assert self._writer is not None
        self._writer.close()

    async def stop(self) -> None:
        if self._reader_task is not None:
            self._reader_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader_task
        if self._writer is not None:
            self._writer.close()

    def _flush(self) -> None:
        assert self._writer is not None
        data = b"".join(self.protocol.data_to_send())
        if data and not self._writer.is_closing():
            self._writer.write(data)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        try:
            with contextlib.suppress(ConnectionResetError):
                # A server that closes first may see our answer to its close frame arrive
                # after its socket is gone: its kernel then ends the stream with a reset, not
                # a FIN. Either way the stream has ended, after the frames read before it.
                while data := await reader.read(65536):
                    self.protocol.receive_data(data)
                    self._take_events()
            self.protocol.receive_eof()
        finally:
            self.ended.set()

    def _take_events(self) -> None:
        for event in self.protocol.events_received():
            if isinstance(event, Response):
                self.accepted = event.status_code == 101
            elif isinstance(event, Frame) and event.opcode == Opcode.PING:
                self.pings += 1
                if not self.answer_pings:
                    self.protocol.data_to_send()  # the queued pong is dropped, never written
            elif isinstance(event, Frame) and event.opcode == Opcode.TEXT:
                self.texts.append(json.loads(event.data))
        self._flush()


@pytest.fixture(name="api", scope="module")
def api_fixture(resources: Resources) -> Iterator[str]:
    env = resources.env(TASKRELAY_WS_PING_INTERVAL_SECONDS=str(PING_SECONDS))
    proc = start_api(env, name="api-ws-protocol")
    try:
        yield f"http://127.0.0.1:{proc.port}"  # type: ignore[attr-defined]
    finally:
        proc.stop()


@dataclass(frozen=True)
class Target:
    """A task of alice's to watch, her token, and the socket's URL."""

    task_id: UUID
    token: str
    url: str


@pytest.fixture(name="target")
async def target_fixture(api: str, uow_factory: UnitOfWorkFactory) -> Target:
    task_id = await tasks.new_task(uow_factory, "alice")
    token = issue_token(SECRET, "alice", 3600)
    url = f"{api.replace('http', 'ws', 1)}/ws/tasks/{task_id}?token={token}"
    return Target(task_id, token, url)


@contextlib.asynccontextmanager
async def raw_client(url: str, *, answer_pings: bool) -> AsyncIterator[RawClient]:
    client = await RawClient.open(url, answer_pings=answer_pings)
    try:
        yield client
    finally:
        await client.stop()


async def open_sockets(api: str) -> int:
    async with httpx.AsyncClient(base_url=api, timeout=10) as http:
        count: int = (await http.get("/health")).json()["sockets"]
        return count


async def until_no_socket_is_open(api: str) -> None:
    async def none_open() -> bool:
        return await open_sockets(api) == 0

    await wait_until(none_open, within=15, what="every socket's handler to end on the server")


async def test_a_peer_that_answers_pings_stays_and_a_silent_one_is_dropped_with_1011(
    api: str, target: Target
) -> None:
    async with (
        raw_client(target.url, answer_pings=True) as answering,
        raw_client(target.url, answer_pings=False) as silent,
    ):

        async def silent_dropped() -> bool:
            return silent.ended.is_set()

        await wait_until(silent_dropped, within=15, what="the silent peer to be dropped")
        assert silent.pings >= 1
        assert silent.close_code == 1011  # uvicorn's "keepalive ping timeout"
        assert [f["type"] for f in silent.texts] == ["snapshot"]

        async def pinged_three_times() -> bool:
            return answering.pings >= 3

        await wait_until(pinged_three_times, within=15, what="three pings, each answered")
        assert not answering.ended.is_set()
        assert answering.close_code is None
        answering.send_text('{"type": "ping"}')

        async def ponged() -> bool:
            return [f["type"] for f in answering.texts] == ["snapshot", "pong"]

        await wait_until(ponged, within=10, what=f"the pong (have {answering.texts!r})")
    await until_no_socket_is_open(api)


async def test_a_burst_of_client_frames_is_read_and_answered_in_full(target: Target) -> None:
    async with raw_client(target.url, answer_pings=True) as client:
        # Written at once: the server pauses reading after each until the handler took it.
        client.send_text(*['{"type": "ping"}'] * 200)

        async def all_answered() -> bool:
            return len(client.texts) >= 201

        await wait_until(all_answered, within=15, what="200 pongs")
        assert [f["type"] for f in client.texts] == ["snapshot"] + ["pong"] * 200
        assert client.close_code is None


async def test_sockets_that_end_with_or_without_a_close_frame_end_on_the_server(
    api: str, target: Target
) -> None:
    await until_no_socket_is_open(api)
    refused = await Watch.open(api, target.task_id, None)
    assert await refused.closed() == 4401
    watches = [await Watch.open(api, target.task_id, target.token) for _ in range(5)]
    for watch in watches:
        await watch.wait_frames(1)
    async with raw_client(target.url, answer_pings=True) as gone:

        async def all_open() -> bool:
            return await open_sockets(api) == 6

        await wait_until(all_open, within=10, what="six open sockets")
        gone.vanish()  # no close frame: the server sees the connection drop
        for watch in watches:
            await watch.close()
        await until_no_socket_is_open(api)
