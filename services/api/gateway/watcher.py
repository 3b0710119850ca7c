"""One socket watching one task: its mailbox, and the loop that writes its frames in order.

The hub calls `deliver`, `resync` and `close` from the broker consumer; they never block and
never await, so one slow browser cannot hold up the others. The mailbox is bounded: when it is
full the socket is closed with 4008 (the client reconnects and resyncs) rather than losing a
frame silently. `run` is the only writer to the socket: the snapshot, then frames in `seq`
order through the `Sequencer`, a fresh snapshot when a hole outlives its grace or the broker
link was rebuilt, and the replies to the client's own frames.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from services.api.gateway.close_codes import CloseCode
from services.api.gateway.sequencer import Sequencer

Snapshot = Callable[[], Awaitable[tuple[int, str]]]
"""Reads the task now: its `seq` and the encoded snapshot frame."""
Send = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Frame:
    """A frame to write, and what the metrics need to know of it."""

    text: str
    kind: str
    """snapshot, progress or reply."""
    committed_at: float | None = None
    """A progress frame's outbox commit (epoch seconds), when the message carried it."""


class WatchMetrics(Protocol):
    def sent(self, kind: str, committed_at: float | None = None) -> None: ...


class _NoMetrics:
    def sent(self, kind: str, committed_at: float | None = None) -> None:
        pass


@dataclass(frozen=True, slots=True)
class WatchLimits:
    queue_limit: int
    """Frames waiting for this socket before it is closed with 4008."""
    gap_grace_seconds: float
    send_timeout_seconds: float = 10.0
    """A send that takes longer means the peer stopped reading: treat it as overflow."""


class Watcher:
    def __init__(
        self, task_id: str, limits: WatchLimits, metrics: WatchMetrics | None = None
    ) -> None:
        self.task_id = task_id
        self._limits = limits
        self._metrics = metrics or _NoMetrics()
        self.resyncs = 0
        """Fresh snapshots sent after the first."""
        self._inbox: deque[tuple[int, Frame]] = deque()
        self._replies: deque[str] = deque()
        self._wake = asyncio.Event()
        self._overflowed = False
        self._resync = False
        self._close_code: int | None = None
        self._sending: asyncio.Task[object] | None = None
        """The task writing to the socket, while it is inside a send."""

    # Called by the hub and the reader: synchronous, never blocking.

    def deliver(self, seq: int, frame: str, committed_at: float | None = None) -> None:
        if len(self._inbox) < self._limits.queue_limit:
            self._inbox.append((seq, Frame(frame, "progress", committed_at)))
        elif not self._overflowed:
            self._overflowed = True
            if self._sending is not None:
                # The writer is stuck behind a slow peer: stop it, so the 4008 close goes out
                # after what is already buffered instead of after the whole backlog.
                self._sending.cancel()
        self._wake.set()

    def resync(self) -> None:
        """Send a fresh snapshot: the broker link was rebuilt and frames may have been missed."""
        self._resync = True
        self._wake.set()

    def reply(self, frame: str) -> None:
        """A frame for the client (a pong, an error); dropped when the socket is already full."""
        if len(self._replies) < self._limits.queue_limit:
            self._replies.append(frame)
            self._wake.set()

    def close(self, code: int) -> None:
        """Stop: `code` is the close code to send, or CLIENT_GONE."""
        if self._close_code is None:
            self._close_code = code
        self._wake.set()

    # The writer loop, run by the socket's own task.

    async def run(self, snapshot: Snapshot, send: Send) -> int:
        """Write frames until asked to stop; return the close code (or CLIENT_GONE)."""
        try:
            return await self._loop(snapshot, send)
        except Overflow:
            return CloseCode.TOO_SLOW

    async def _loop(self, snapshot: Snapshot, send: Send) -> int:
        seq, text = await snapshot()
        await self._send(send, Frame(text, "snapshot"))
        order: Sequencer[Frame] = Sequencer(seq, max_held=self._limits.queue_limit)
        gap_since: float | None = None
        while True:
            if not await self._wait(gap_since):
                self._resync = True  # a hole outlived its grace: the stream cannot be trusted
            self._wake.clear()
            if self._close_code is not None:
                return self._close_code
            if self._overflowed or order.overflowing:
                return CloseCode.TOO_SLOW
            ready: list[Frame] = []
            if self._resync:
                self._resync = False
                self.resyncs += 1
                gap_since = None  # a hole left after a fresh snapshot gets a new grace
                seq, text = await snapshot()
                ready = [Frame(text, "snapshot"), *order.reset(seq)]
            while self._inbox:
                ready.extend(order.accept(*self._inbox.popleft()))
            while self._replies:
                ready.append(Frame(self._replies.popleft(), "reply"))
            for frame in ready:
                await self._send(send, frame)
            gap_since = (gap_since or time.monotonic()) if order.has_gap else None

    async def _wait(self, gap_since: float | None) -> bool:
        """Wait for work; False when a hole has been open longer than the grace."""
        if gap_since is None:
            await self._wake.wait()
            return True
        left = gap_since + self._limits.gap_grace_seconds - time.monotonic()
        try:
            async with asyncio.timeout(max(left, 0.0)):
                await self._wake.wait()
        except TimeoutError:
            return False
        return True

    async def _send(self, send: Send, frame: Frame) -> None:
        task = self._sending = asyncio.current_task()
        try:
            async with asyncio.timeout(self._limits.send_timeout_seconds):
                await send(frame.text)
            self._metrics.sent(frame.kind, frame.committed_at)
        except TimeoutError:
            raise SlowConsumer(self.task_id) from None
        except asyncio.CancelledError:
            if not self._overflowed or task is None:
                raise  # a real cancellation (shutdown), not ours
            task.uncancel()
            raise Overflow(self.task_id) from None
        finally:
            self._sending = None


class SlowConsumer(Exception):
    """The peer took no frame for a long time: it is gone or stuck; the socket is abandoned."""


class Overflow(Exception):
    """The mailbox filled while a send was waiting on the peer: close with 4008."""
