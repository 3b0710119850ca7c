"""A WebSocket watcher for benchmarks: every frame of one task's socket, with its arrival time.

The reader runs as a background task and stamps each frame with `time.perf_counter()` as it
arrives, before anything else looks at it, so spacing and latency figures are the socket's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed


@dataclass(frozen=True, slots=True)
class Frame:
    at: float
    """`time.perf_counter()` when the frame arrived."""
    body: dict[str, Any]


class TimedSocket:
    """One `/ws/tasks/{task_id}` socket; `frames` grows as frames arrive."""

    def __init__(self, connection: ClientConnection) -> None:
        self.frames: list[Frame] = []
        self._connection = connection
        self._arrived = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(cls, base_url: str, task_id: object, token: str) -> TimedSocket:
        url = f"{base_url.replace('http', 'ws', 1)}/ws/tasks/{task_id}?token={quote(token)}"
        return cls(await connect(url, open_timeout=30, max_size=None))

    async def _read(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for message in self._connection:
                self.frames.append(Frame(time.perf_counter(), json.loads(message)))
                self._arrived.set()

    async def wait_for(
        self, match: Callable[[dict[str, Any]], bool], start: int = 0, within: float = 60.0
    ) -> Frame:
        """The first frame from index `start` on that `match`es, waiting up to `within` s."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while True:
            for frame in self.frames[start:]:
                if match(frame.body):
                    return frame
            start = len(self.frames)
            self._arrived.clear()
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"no matching frame in {within} s ({len(self.frames)} frames)")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), left)

    async def close(self) -> None:
        self._reader.cancel()
        await self._connection.close()


def percentile(sorted_values: list[float], fraction: float) -> float:
    """The value below which `fraction` of the (sorted) values lie: nearest rank."""
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))]
