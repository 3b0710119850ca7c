"""The relay's dedicated PostgreSQL session: LISTEN, the leadership locks, and fenced claims.

One asyncpg connection, never a pooled one: a pool's reset runs UNLISTEN and releases session
advisory locks. Claims and marks (the outbox's statements, `OutboxDelivery`) run on this same
session, so a query that succeeds proves the locks are still held; if the session dies,
PostgreSQL frees the locks and a standby takes them. TCP keepalives make the server drop a
silently vanished relay within seconds. Any error of the driver on this session means
PostgreSQL is not there for it (`translated(..., any_error=True)`), and the session is dropped.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any
from uuid import UUID

import asyncpg

from services.relay.partitions import COUNT_CLASS, LOCK_CLASS, PartitionScheme
from shared.adapters.postgres.outbox import OUTBOX_CHANNEL, OutboxDelivery, OutboxRow
from shared.adapters.unavailable import POSTGRES, POSTGRES_ERRORS, translated, unavailable
from shared.errors import DependencyUnavailable

SESSION_SETTINGS = {
    "application_name": "taskrelay-relay",
    "tcp_keepalives_idle": "5",
    "tcp_keepalives_interval": "2",
    "tcp_keepalives_count": "2",
    # The claim must walk the unpublished index in id order and stop at the limit, even when
    # statistics are stale (a backlog that grew faster than autoanalyze): a bitmap scan and a
    # sort of the whole backlog took 10 s a claim on 1M rows. This session runs only the claim,
    # marks by primary key, and lock calls, so these switches cannot hurt any other query.
    # With them that walk is the only plan left, so a cached generic plan is that walk too
    # (`claim` plans anew only a claim that skips busy tasks).
    "enable_seqscan": "off",
    "enable_bitmapscan": "off",
    "enable_sort": "off",
    # A mark lost in a database crash only means that row is published again (a duplicate,
    # which consumers drop); it never loses a row. So marks need not wait for the WAL flush.
    "synchronous_commit": "off",
}
OTHER_COUNTS = """
SELECT DISTINCT objid::bigint FROM pg_locks
WHERE locktype = 'advisory' AND objsubid = 2 AND granted
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND classid::bigint = $1 AND objid::bigint <> $2
"""


class OutboxSession:
    """The dedicated connection; every method raises DependencyUnavailable when it is lost."""

    def __init__(
        self,
        dsn: str,
        scheme: PartitionScheme,
        on_notify: Callable[[], None],
        *,
        query_timeout: float = 5.0,
    ) -> None:
        self._dsn = dsn
        self._scheme = scheme
        self._on_notify = on_notify
        self._timeout = query_timeout
        self._conn: Any = None
        self._outbox: OutboxDelivery | None = None
        self._plan_mode = "auto"
        """The session's `plan_cache_mode`, as the claim last set it."""
        self.owned: frozenset[int] = frozenset()

    @property
    def connected(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def connect(self) -> None:
        with self._translated("connect"):
            conn = await asyncpg.connect(
                self._dsn, timeout=self._timeout, server_settings=SESSION_SETTINGS
            )
        self._conn, self._plan_mode = conn, "auto"
        self._outbox = OutboxDelivery(conn, self._timeout)
        with self._translated("LISTEN"):
            await conn.add_listener(OUTBOX_CHANNEL, self._notified)
            await conn.execute(
                "SELECT pg_advisory_lock_shared($1, $2)", COUNT_CLASS, self._scheme.count
            )

    async def other_partition_counts(self) -> list[int]:
        """Partition counts that other running relays of this database were started with."""
        self._connected()
        with self._translated("partition check"):
            rows = await self._conn.fetch(OTHER_COUNTS, COUNT_CLASS, self._scheme.count)
        return [int(r[0]) for r in rows]

    async def close(self) -> None:
        """Release every lock and close; harmless when already gone."""
        conn, self._conn, self._outbox, self.owned = self._conn, None, None, frozenset()
        if conn is None or conn.is_closed():
            return
        try:
            await asyncio.wait_for(conn.execute("SELECT pg_advisory_unlock_all()"), 2.0)
            await asyncio.wait_for(conn.close(), 2.0)
        except (*POSTGRES_ERRORS, asyncio.CancelledError):
            conn.terminate()

    def drop(self) -> None:
        """Forget a broken connection at once (its locks die with it on the server)."""
        conn, self._conn, self._outbox, self.owned = self._conn, None, None, frozenset()
        if conn is not None:
            conn.terminate()

    async def acquire(self) -> frozenset[int]:
        """Try to lock the partitions this relay may still take.

        With every partition it may hold already held this asks nothing: the claim or probe
        that follows runs on this same session, so its success proves the locks are held.
        """
        room = self._scheme.room(self.owned)
        if not room:
            return self.owned
        self._connected()
        with self._translated("pg_try_advisory_lock"):
            for partition in self._scheme.candidates(self.owned):
                if room == 0:
                    break
                if await self._conn.fetchval(
                    "SELECT pg_try_advisory_lock($1, $2)", LOCK_CLASS, partition, timeout=2.0
                ):
                    self.owned |= {partition}
                    room -= 1
        return self.owned

    async def probe(self) -> None:
        self._connected()
        with self._translated("probe"):
            await self._conn.fetchval("SELECT 1", timeout=2.0)

    async def claim(self, limit: int, busy: Sequence[UUID] = ()) -> list[OutboxRow]:
        """Up to `limit` due rows of the owned partitions, in id (commit) order per task,
        skipping the `busy` tasks (those with rows in flight)."""
        buckets = _buckets(self._scheme, self.owned)
        # A live claim (no task busy) finds a row or two: the plan the session caches saves
        # planning it, which cost its backend more than running it. A claim behind a batch in
        # flight walks past the busy tasks' rows, often through the whole backlog: planned for
        # its actual list of tasks, PostgreSQL hashes the list, which a cached plan cannot.
        plan_mode = "force_custom_plan" if busy else "auto"
        outbox = self._connected()
        with self._translated("claim"):
            if plan_mode != self._plan_mode:  # only as a backlog starts or ends
                await self._conn.execute(f"SET plan_cache_mode = {plan_mode}")
                self._plan_mode = plan_mode
            return await outbox.claim(limit, busy, buckets)

    async def mark_published(self, ids: Sequence[int]) -> list[int]:
        """Mark confirmed rows; returns the ids this call marked (not ones marked already)."""
        if not ids:
            return []
        outbox = self._connected()
        with self._translated("mark published"):
            return await outbox.mark_published(ids)

    async def mark_failed(self, failures: Sequence[tuple[int, str, float | None]]) -> None:
        """(id, error, retry delay or None to park) for each row that failed on its own."""
        if not failures:
            return
        outbox = self._connected()
        with self._translated("mark failed"):
            await outbox.mark_failed(failures)

    def _notified(self, *_: object) -> None:
        self._on_notify()

    def _connected(self) -> OutboxDelivery:
        """The outbox's statements on this session; DependencyUnavailable if it is gone."""
        if self._outbox is None or not self.connected:
            raise unavailable(POSTGRES, self._dsn, "not connected")
        return self._outbox

    @contextmanager
    def _translated(self, what: str) -> Iterator[None]:
        """The one translation (`shared.adapters.unavailable.translated`) around a step of the
        session, which runs only fixed statements of its own: any driver error means PostgreSQL
        is not there for it, and drops it, as no error leaves it fit to hold the locks. `what`
        names the step in the error."""
        try:
            with translated(POSTGRES, self._dsn, what, any_error=True):
                yield
        except DependencyUnavailable:
            self.drop()
            raise


@lru_cache(maxsize=64)
def _buckets(scheme: PartitionScheme, owned: frozenset[int]) -> frozenset[int] | None:
    """The outbox buckets of these owned partitions; None when they are all of them."""
    if len(owned) == scheme.count:
        return None
    return frozenset(scheme.buckets(owned))
