"""The per-socket ordering rule of the gateway: every `seq` once, in order, above the snapshot.

Frames of one task can reach a socket late (buffered while the snapshot was read), twice (the relay
publishes at least once) or with a hole (a message the broker never routed to us). The `Sequencer`
turns that into the stream of docs/protocol.md §7: a frame goes out only when it is the next `seq`;
an older one is dropped; a newer one waits until the hole fills or, past a grace, the socket is
resynchronised from a fresh snapshot. It is pure: no I/O, no clock.
"""

from __future__ import annotations

from typing import Generic, TypeVar

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
