"""How often one client may open a socket: a connect budget per user, or per address.

The per-user socket cap counts open sockets, not connects: a connect-close loop cost an owner
read, a broker bind, a snapshot and an unbind each time, without bound (docs/security.md). Each
client gets `TASKRELAY_WS_CONNECTS_PER_SECOND` connects per one-second window on this instance:
the user of a valid token, else the peer address (anonymous connects are refused 4401 anyway,
but each still costs an accept and a token check). Past the budget the socket is closed with
4429 before any database or broker work.

Windows are fixed seconds, like Litestar's HTTP rate limit: a burst straddling two windows may
get twice the budget, never more. Counters live for their window only, so memory is bounded by
the clients seen in one second.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class ConnectBudget:
    def __init__(self, per_second: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._per_second = per_second
        self._clock = clock
        self._window = -1
        self._counts: dict[str, int] = {}

    def admit(self, client: str) -> bool:
        """Count a connect of `client` (`user:<id>` or `addr:<host>`); False past the budget."""
        window = int(self._clock())
        if window != self._window:
            self._window = window
            self._counts = {}
        count = self._counts.get(client, 0)
        if count >= self._per_second:
            return False
        self._counts[client] = count + 1
        return True
