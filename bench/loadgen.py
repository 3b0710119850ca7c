"""A light HTTP/1.1 keep-alive load generator, so the client costs the 2 cores little.

Each of `concurrency` connections sends its share of POSTs one after another and records the
status code of each answer.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence


async def _connection(
    port: int, paths: Sequence[str], headers: dict[str, str], codes: Counter[int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    try:
        for path in paths:
            request = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{extra}"
            writer.write(f"{request}Content-Length: 0\r\n\r\n".encode())
            status_line = await reader.readline()
            length = 0
            while (line := await reader.readline()) not in (b"\r\n", b""):
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            await reader.readexactly(length)
            codes[int(status_line.split()[1])] += 1
    finally:
        writer.close()


async def post_all(
    port: int, paths: Sequence[str], headers: dict[str, str], concurrency: int
) -> tuple[float, Counter[int]]:
    """POST every path; returns (seconds taken, status code counts)."""
    codes: Counter[int] = Counter()
    shares = [paths[i::concurrency] for i in range(concurrency)]
    started = time.perf_counter()
    await asyncio.gather(*(_connection(port, share, headers, codes) for share in shares if share))
    return time.perf_counter() - started, codes
