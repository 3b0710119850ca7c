"""`Flag` and `Mailbox`: asyncio's `Event` and `Queue` as one socket needs them, for less memory.

Every `asyncio.Event` holds a `collections.deque` for its waiters and every `asyncio.Queue`
three (items, getters, putters), and an empty deque already costs 760 bytes: a socket held five
of them (uvicorn's receive queue and writable event, the watcher's wake-up), 3.8 kB of the
~37 kB it cost (bench/ws_fanout.py). These keep the same behaviour for what the gateway and
uvicorn's WebSocket protocol call (`set`/`clear`/`is_set`/`wait`; `put_nowait`/`get`/`empty`/
`qsize`), with their waiters in a list made only while somebody waits, and the items in a list.
Single-threaded, like asyncio's own: call them from the event loop's thread only.
"""

from __future__ import annotations

import asyncio
from typing import Generic, TypeVar

T = TypeVar("T")


def _wake_first(waiters: list[asyncio.Future[None]] | None) -> None:
    """Wake the first waiter still waiting (one that was cancelled meanwhile is skipped)."""
    while waiters:
        waiter = waiters.pop(0)
        if not waiter.done():
            waiter.set_result(None)
            return


def _enqueue(
    waiters: list[asyncio.Future[None]] | None,
) -> tuple[list[asyncio.Future[None]], asyncio.Future[None]]:
    """A new waiter at the end of `waiters` (the list made now if there is none yet)."""
    waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    waiters = [] if waiters is None else waiters
    waiters.append(waiter)
    return waiters, waiter


class Flag:
    """`asyncio.Event`: `wait` returns once the flag is set, at once if it is set already."""

    __slots__ = ("_set", "_waiters")

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[asyncio.Future[None]] | None = None

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        waiters, self._waiters = self._waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if self._set:
            return True
        self._waiters, waiter = _enqueue(self._waiters)
        try:
            await waiter
            return True
        finally:
            if self._waiters is not None and waiter in self._waiters:
                self._waiters.remove(waiter)  # cancelled, or timed out
                if not self._waiters:
                    self._waiters = None


class Mailbox(Generic[T]):
    """An unbounded `asyncio.Queue`: `put_nowait` never blocks, `get` waits for an item."""

    __slots__ = ("_getters", "_items")

    def __init__(self) -> None:
        self._items: list[T] = []
        self._getters: list[asyncio.Future[None]] | None = None

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: T) -> None:
        self._items.append(item)
        _wake_first(self._getters)

    async def get(self) -> T:
        while not self._items:
            self._getters, getter = _enqueue(self._getters)
            try:
                await getter
            except BaseException:
                getter.cancel()
                if self._getters is not None and getter in self._getters:
                    self._getters.remove(getter)
                elif self._items:
                    _wake_first(self._getters)  # it was woken for an item it will not take
                raise
            finally:
                if not self._getters:
                    self._getters = None
        return self._items.pop(0)
