"""The relay's and worker's probe server against peers that do not behave (docs/security.md):
a peer that never reads its answer is dropped after the timeout, and connections past the cap
are closed at once, so what the server holds stays bounded. Real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from harness.processes import free_port
from harness.wait import wait_until
from shared.observability.probe_server import ProbeServer

BIG = b"m" * (16 * 2**20)  # far more than the kernel buffers of one connection
TIMEOUT = 1.0
CAP = 4


@pytest.fixture(name="server")
async def server_fixture() -> AsyncIterator[ProbeServer]:
    routes = {"/livez": lambda: (200, "text/plain", b"live\n"), "/big": lambda: (200, "x", BIG)}
    server = ProbeServer(routes, "127.0.0.1", free_port(), max_connections=CAP, timeout=TIMEOUT)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def port_of(server: ProbeServer) -> int:
    return int(server.where.rsplit(":", 1)[1])


async def get(server: ProbeServer, path: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    try:
        async with asyncio.timeout(10):
            return await reader.read()
    except ConnectionResetError:
        return b""  # refused: aborted without an answer
    finally:
        writer.close()


async def test_a_peer_that_never_reads_is_dropped_after_the_timeout(server: ProbeServer) -> None:
    peer = socket.create_connection(("127.0.0.1", port_of(server)))
    peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        peer.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")  # then never read

        async def holding() -> bool:
            return server.open_connections == 1

        await wait_until(holding, within=5, what="the server writing to the peer")

        async def dropped() -> bool:
            return server.open_connections == 0

        await wait_until(dropped, within=TIMEOUT + 5, what="the stuck answer dropped")
    finally:
        peer.close()
    assert (await get(server, "/livez")).startswith(b"HTTP/1.1 200")


async def test_connections_past_the_cap_are_closed_at_once(server: ProbeServer) -> None:
    idle = [socket.create_connection(("127.0.0.1", port_of(server))) for _ in range(CAP)]
    try:

        async def all_held() -> bool:
            return server.open_connections == CAP

        await wait_until(all_held, within=5, what=f"{CAP} idle connections held")
        assert await get(server, "/livez") == b""  # closed without an answer
        assert server.open_connections == CAP

        async def released() -> bool:  # the idle ones sent nothing within the timeout
            return server.open_connections == 0

        await wait_until(released, within=TIMEOUT + 5, what="the idle connections timed out")
    finally:
        for peer in idle:
            peer.close()
    assert (await get(server, "/livez")).startswith(b"HTTP/1.1 200")
