"""Delays: capped exponential backoff with jitter, for failed rows and for reconnecting.

Jitter keeps relays (and rows) that failed together from retrying in lockstep.
"""

from __future__ import annotations

import random


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random | None = None) -> float:
    """The wait before retry number `attempt` (1 for the first): in [d/2, d], d = base * 2^(n-1)."""
    ceiling = min(cap, base * 2 ** max(0, attempt - 1))
    return (rng or random).uniform(ceiling / 2, ceiling)


class Backoff:
    """Reconnection delays that grow while a dependency stays down, and reset when it is back."""

    def __init__(self, base: float = 0.2, cap: float = 2.0) -> None:
        self._base, self._cap = base, cap
        self._attempt = 0

    def next(self) -> float:
        self._attempt += 1
        return backoff_delay(self._attempt, self._base, self._cap)

    def reset(self) -> None:
        self._attempt = 0
