"""A light HTTP/1.1 keep-alive client, so the client costs the 2 cores (and the figures) little.

`KeepAlive` is one connection that sends POSTs one after another, as a browser's `fetch` does on
a kept-alive connection; `post_all` spreads many POSTs over `concurrency` of them and records the
status code of each answer. A general client (httpx) spends ~1.5-2 ms of Python per request on
this machine, which a bench would otherwise count as the server's time.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence


class KeepAlive:
    """One HTTP/1.1 connection to 127.0.0.1:`port`; each POST has an empty body."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str
    ) -> None:
        self._reader, self._writer, self._host = reader, writer, host

    @classmethod
    async def open(cls, port: int, headers: dict[str, str]) -> KeepAlive:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        return cls(reader, writer, f"Host: 127.0.0.1:{port}\r\n{extra}")

    async def post(self, path: str) -> tuple[int, bytes]:
        """(status code, body) of one POST."""
        request = f"POST {path} HTTP/1.1\r\n{self._host}Content-Length: 0\r\n\r\n"
        self._writer.write(request.encode())
        status_line = await self._reader.readline()
        length = 0
        while (line := await self._reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return int(status_line.split()[1]), await self._reader.readexactly(length)

    def close(self) -> None:
        self._writer.close()


async def _connection(
    port: int, paths: Sequence[str], headers: dict[str, str], codes: Counter[int]
) -> None:
    client = await KeepAlive.open(port, headers)
    try:
        for path in paths:
            status, _ = await client.post(path)
            codes[status] += 1
    finally:
        client.close()


async def post_all(
    port: int, paths: Sequence[str], headers: dict[str, str], concurrency: int
) -> tuple[float, Counter[int]]:
    """POST every path; returns (seconds taken, status code counts)."""
    codes: Counter[int] = Counter()
    shares = [paths[i::concurrency] for i in range(concurrency)]
    started = time.perf_counter()
    await asyncio.gather(*(_connection(port, share, headers, codes) for share in shares if share))
    return time.perf_counter() - started, codes
