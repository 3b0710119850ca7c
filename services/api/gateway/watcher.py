"""One socket watching one task: its mailbox, and the loop that writes its frames in order.

The hub calls `deliver`, `resync` and `close` from the broker consumer; they never block and
never await, so one slow browser cannot hold up the others. The mailbox is bounded: when it is
full the socket is closed with 4008 (the client reconnects and resyncs) rather than losing a
frame silently. `run` is the only writer to the socket: the snapshot, then frames in `seq`
order through the `Sequencer`, a fresh snapshot when a hole outlives its grace or the broker
link was rebuilt, and the replies to the client's own frames.

The `Sequencer` is the ordering rule itself (docs/protocol.md §7), pure (no I/O, no clock) so
its unit tests drive it frame by frame: frames of one task can reach a socket late (buffered
while the snapshot was read), twice (the relay publishes at least once) or with a hole (a
message the broker never routed to us); a frame goes out only when it is the next `seq`, an
older one is dropped, a newer one waits until the hole fills or, past a grace, the socket is
resynchronised from a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from services.api.gateway.close_codes import CloseCode
from services.api.gateway.primitives import Flag

F = TypeVar("F")
"""A frame, opaque here (its text, maybe with what the caller needs to know about it)."""


class Sequencer(Generic[F]):
    """Orders the frames of one task for one socket, from the `seq` of its last snapshot."""

    def __init__(self, last_sent: int, max_held: int) -> None:
        self.last_sent = last_sent
        """The highest `seq` the socket has seen: its snapshot's, or its last frame's."""
        self._held: dict[int, F] = {}
        self._max_held = max_held

    @property
    def has_gap(self) -> bool:
        """Frames are waiting for a lower `seq` that has not arrived."""
        return bool(self._held)

    @property
    def overflowing(self) -> bool:
        """So many frames wait behind a hole that waiting longer is pointless."""
        return len(self._held) > self._max_held

    def reset(self, snapshot_seq: int) -> list[F]:
        """A fresh snapshot was sent: forget what it covers; return the frames now in order.

        Never backwards: a frame already sent is never sent again, whatever the snapshot says.
        """
        self.last_sent = max(self.last_sent, snapshot_seq)
        self._held = {seq: frame for seq, frame in self._held.items() if seq > snapshot_seq}
        return self._release()

    def accept(self, seq: int, frame: F) -> list[F]:
        """Offer one frame; return the frames (maybe none) to send now, in `seq` order."""
        if seq <= self.last_sent or seq in self._held:
            return []  # already sent, or a duplicate of one already waiting
        self._held[seq] = frame
        return self._release()

    def _release(self) -> list[F]:
        ready: list[F] = []
        while (frame := self._held.pop(self.last_sent + 1, None)) is not None:
            ready.append(frame)
            self.last_sent += 1
        return ready


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
        # Plain lists and a `Flag`, not deques and an `asyncio.Event`: an empty deque costs 760
        # bytes, and thousands of sockets hold these while they wait (docs/gateway.md, memory).
        self._inbox: list[tuple[int, Frame]] = []
        self._replies: list[str] = []
        self._wake = Flag()
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
            seq = await self._send_snapshot(snapshot, send)
            order: Sequencer[Frame] = Sequencer(seq, max_held=self._limits.queue_limit)
            gap_since: float | None = None
            while True:
                if not await self._wait(gap_since):
                    self._resync = True  # a hole outlived its grace: the stream cannot be trusted
                if self._close_code is not None:
                    return self._close_code
                if self._overflowed or order.overflowing:
                    return CloseCode.TOO_SLOW
                if self._resync:
                    self._resync = False
                    self.resyncs += 1
                    gap_since = None  # a hole left after a fresh snapshot gets a new grace
                    await self._write(send, order.reset(await self._send_snapshot(snapshot, send)))
                await self._write(send, self._ready(order))
                gap_since = (gap_since or time.monotonic()) if order.has_gap else None
        except Overflow:
            return CloseCode.TOO_SLOW

    async def _wait(self, gap_since: float | None) -> bool:
        """Wait for work; False when a hole has been open longer than the grace."""
        try:
            if gap_since is None:
                await self._wake.wait()
            else:
                left = gap_since + self._limits.gap_grace_seconds - time.monotonic()
                async with asyncio.timeout(max(left, 0.0)):
                    await self._wake.wait()
        except TimeoutError:
            return False
        finally:
            self._wake.clear()
        return True

    def _ready(self, order: Sequencer[Frame]) -> list[Frame]:
        """Empty the mailbox: the frames now in `seq` order, then the replies."""
        inbox, replies = self._inbox, self._replies
        self._inbox, self._replies = [], []
        ready = [out for seq, frame in inbox for out in order.accept(seq, frame)]
        ready.extend(Frame(reply, "reply") for reply in replies)
        return ready

    async def _send_snapshot(self, snapshot: Snapshot, send: Send) -> int:
        """Read and send a snapshot; its `seq`. The text is not kept once it is written."""
        seq, text = await snapshot()
        await self._send(send, Frame(text, "snapshot"))
        return seq

    async def _write(self, send: Send, frames: list[Frame]) -> None:
        for frame in frames:
            await self._send(send, frame)

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
