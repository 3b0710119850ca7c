"""A WebSocket client for gateway tests: it records every frame and the close code it gets.

Frames are read by a background task into `frames`, so a test can wait for what it expects
with a deadline, and check afterwards that nothing else came.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any
from urllib.parse import quote

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from harness.wait import wait_until


class Watch:
    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.frames: list[dict[str, Any]] = []
        self.arrivals: list[float] = []
        """When each frame arrived (`time.monotonic()`), in step with `frames`."""
        self.close_code: int | None = None
        self._closed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(
        cls, base_url: str, task_id: object, token: str | None, origin: str | None = None
    ) -> Watch:
        url = f"{base_url.replace('http', 'ws', 1)}/ws/tasks/{task_id}"
        if token is not None:
            url += f"?token={quote(token)}"
        headers = {"Origin": origin} if origin else None
        connection = await connect(url, additional_headers=headers, open_timeout=10)
        return cls(connection)

    async def _read(self) -> None:
        try:
            async for message in self.connection:
                self.arrivals.append(time.monotonic())
                self.frames.append(json.loads(message))
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self.connection.close_code or 1006
            self._closed.set()

    @property
    def progress_seqs(self) -> list[int]:
        return [f["seq"] for f in self.frames if f["type"] == "progress"]

    def snapshots(self) -> list[dict[str, Any]]:
        return [f for f in self.frames if f["type"] == "snapshot"]

    async def closed(self, within: float = 10.0) -> int:
        await asyncio.wait_for(self._closed.wait(), within)
        assert self.close_code is not None
        return self.close_code

    async def wait_frames(self, count: int, within: float = 10.0) -> list[dict[str, Any]]:
        async def enough() -> bool:
            return len(self.frames) >= count

        await wait_until(enough, within=within, what=f"{count} frames (have {self.frames!r})")
        return self.frames

    async def wait_seq(self, seq: int, within: float = 15.0) -> None:
        """Until a frame (snapshot or progress) with this `seq` or higher arrived."""

        async def reached() -> bool:
            return any(f.get("seq", -1) >= seq for f in self.frames)

        await wait_until(reached, within=within, what=f"seq {seq}")

    async def send(self, text: str) -> None:
        await self.connection.send(text)

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.connection.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._reader, 5)
