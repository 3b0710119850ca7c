"""Leadership by partition: which outbox rows a relay may publish, and the locks that say so.

Every outbox row carries `partition_key = crc32(task_id) % 256` (a task's bucket). The relays
fold the 256 buckets into `partitions` lock partitions (`bucket % partitions`); partition `p` is
owned by whoever holds the session advisory lock `(LOCK_CLASS, p)` on its dedicated connection.
With one partition (the default) that is a single leader and hot standbys; with more, several
relays share the work, each task still published by exactly one of them. See docs/relay.md.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.adapters.postgres.outbox import PARTITION_BUCKETS

LOCK_CLASS = 0x7452
"""The first key of every relay advisory lock ("tR"); the second is the partition number."""
COUNT_CLASS = LOCK_CLASS + 1
"""Every relay holds a shared lock (COUNT_CLASS, partition count) so a relay started with a
different count can see it and refuse to start: two counts would let two relays own a task."""


@dataclass(frozen=True, slots=True)
class PartitionScheme:
    count: int = 1
    """Lock partitions; every relay of one deployment must use the same count."""
    max_owned: int = 0
    """How many partitions one relay may hold; 0 means as many as it can get."""

    def __post_init__(self) -> None:
        if self.count < 1 or self.max_owned < 0:
            raise ValueError("partitions must be >= 1 and max_owned >= 0")

    @property
    def all(self) -> tuple[int, ...]:
        return tuple(range(self.count))

    def room(self, owned: frozenset[int]) -> int:
        """How many more partitions this relay may take."""
        return max(0, (self.max_owned or self.count) - len(owned))

    def candidates(self, owned: frozenset[int]) -> list[int]:
        """Partitions worth trying to lock now; the caller stops once `room` is used up."""
        return [p for p in self.all if p not in owned] if self.room(owned) else []

    def buckets(self, owned: frozenset[int]) -> list[int]:
        """The outbox `partition_key` values that belong to the owned partitions."""
        return [b for b in range(PARTITION_BUCKETS) if b % self.count in owned]
