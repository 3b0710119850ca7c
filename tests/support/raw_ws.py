"""A WebSocket opened by hand on a plain TCP socket: for clients no library would be, ones
that put raw characters in the request line or send frames and never read."""

from __future__ import annotations

import base64
import os
import select
import socket
import struct
import time


def open_raw(port: int, target: str, rcvbuf: int | None = None) -> tuple[socket.socket, bytes]:
    """Send the opening handshake for `target` (path and query, as written) to 127.0.0.1:port;
    the socket and the response head. `rcvbuf` shrinks the receive buffer before connecting."""
    sock = socket.socket()
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode("latin-1")
    )
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1)
        if not chunk:
            break
        head += chunk
    return sock, head


def masked_frame(opcode: int, payload: bytes) -> bytes:
    """One client frame (clients must mask), FIN set; payload up to 125 bytes."""
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return struct.pack("!BB", 0x80 | opcode, 0x80 | len(payload)) + mask + body


PING = 0x9


def send_until_stalled(sock: socket.socket, chunk: bytes, most: int, stall: float) -> int:
    """Send `chunk` again and again without reading, until `most` bytes went out or the
    peer took nothing for `stall` seconds; the bytes sent."""
    sock.setblocking(False)
    sent, last_progress = 0, time.monotonic()
    view = memoryview(chunk)
    offset = 0
    while sent < most and time.monotonic() - last_progress < stall:
        _, writable, _ = select.select([], [sock], [], 0.2)
        if not writable:
            continue
        try:
            n = sock.send(view[offset:])
        except BlockingIOError:
            continue
        except OSError:
            break  # the server closed it: it took no more
        sent += n
        offset = (offset + n) % len(chunk)
        last_progress = time.monotonic()
    return sent
