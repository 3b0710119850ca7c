"""The terminal of `taskrelay run`: its stdout (the children's prefixed output and the banner)
and its stderr (its own log lines), and what happens when their reader goes away.

When stdout or stderr is a pipe whose reader closed (`taskrelay run | head` once head has had
its lines, a log collector that died), `run` must stop its children rather than die on the next
write and leave them orphaned. Either stream's end is noticed as soon as it happens (epoll
reports an error on a pipe's write end whose reader is gone) or at the next write that fails;
then that stream (and the other, if it went too) is pointed at /dev/null, so the orderly stop
that follows can still log and print. A stop for another reason (SIGHUP from a terminal that
closed) silences whatever has gone the same way, first.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import select
import stat
import sys
from collections.abc import Callable

_NAMES = {1: "stdout", 2: "stderr"}


class Streams:
    """stdout and stderr; `on_closed(name)` is called once, when the first of them closes."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_closed: Callable[[str], None]) -> None:
        self._loop, self._on_closed = loop, on_closed
        self._watched: list[int] = []
        self.closed: str | None = None

    def watch(self) -> None:
        """Watch each stream that is a pipe (a terminal's end comes as SIGHUP instead)."""
        for fd in _NAMES:
            with contextlib.suppress(OSError):
                if stat.S_ISFIFO(os.fstat(fd).st_mode):
                    self._loop.add_reader(
                        fd, self._close, fd
                    )  # a write end polls "readable" on error
                    self._watched.append(fd)

    def unwatch(self) -> None:
        for fd in self._watched:
            self._loop.remove_reader(fd)
        self._watched.clear()

    def write(self, data: bytes) -> None:
        """Write to stdout; a reader that has gone away ends the run instead of raising."""
        try:
            sys.stdout.buffer.write(data)
            sys.stdout.flush()
        except OSError:  # EPIPE from a pipe, EIO from a terminal that has gone
            self._close(1)

    def _close(self, fd: int) -> None:
        if self.closed is not None:
            return
        self.closed = _NAMES[fd]
        self.unwatch()
        _silence(fd)
        silence_gone()
        self._on_closed(self.closed)


def silence_gone() -> None:
    """Point at /dev/null each of stdout and stderr whose reader has gone: a closed pipe, or a
    terminal that hung up (it has by the time its SIGHUP arrives)."""
    for fd in _NAMES:
        if _gone(fd):
            _silence(fd)


def _gone(fd: int) -> bool:
    """Has the reader of `fd` gone (a pipe's error, a terminal's hang-up)?"""
    poller = select.poll()
    poller.register(fd, 0)  # no events asked for: errors and hang-ups are always reported
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


def _silence(fd: int) -> None:
    """Point `fd` at /dev/null (what Python still buffers for it goes there too)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
