"""Backlog figures for `/health`, and cleanup of what no longer needs to be kept.

These run on a small pool of their own, apart from the dedicated session, so a slow count or a
long delete never delays a claim. Cleanup deletes in small batches (each its own short
transaction) so the table and its indexes stay small without long locks or bloat spikes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncEngine

from services.relay.outbox_sql import DELETE_PUBLISHED, EXACT_BACKLOG_LIMIT, STATS
from shared.adapters.dependencies import POSTGRES
from shared.adapters.outages import translated
from shared.adapters.postgres.idempotency import PURGE_EXPIRED

QUERY_TIMEOUT = 10.0
"""Bound on each query, connecting included: a silent network must not hold up a stop."""


@dataclass(frozen=True, slots=True)
class Backlog:
    pending: int
    oldest_age_seconds: float | None
    parked: int


class Housekeeping:
    def __init__(
        self,
        engine: AsyncEngine,
        *,
        retention_seconds: float,
        idempotency_ttl: timedelta,
        batch_size: int,
        url: str,
    ) -> None:
        self._engine = engine
        self._retention = retention_seconds
        self._idempotency_ttl = idempotency_ttl
        """The API's: a stored Idempotency-Key response older than this is purged."""
        self._batch = batch_size
        self._url = url
        """Named (without its password) when PostgreSQL cannot be reached."""

    @property
    def engine(self) -> AsyncEngine:
        return self._engine

    async def backlog(self) -> Backlog:
        with translated(POSTGRES, self._url, "backlog", any_error=True):
            async with asyncio.timeout(QUERY_TIMEOUT), self._engine.connect() as conn:
                row = (await conn.exec_driver_sql(STATS)).one()
        pending = int(row.counted)
        if pending > EXACT_BACKLOG_LIMIT:
            pending = max(pending, int(row.last_id) - int(row.first_id) + 1)
        return Backlog(pending, row.oldest_age, int(row.parked))

    async def cleanup(self, stopping: asyncio.Event) -> tuple[int, int]:
        """Delete expired published rows and idempotency records; returns (rows, records)."""
        with translated(POSTGRES, self._url, "cleanup", any_error=True):
            rows = await self._drain(stopping, self._delete_published)
            records = await self._drain(stopping, self._purge_idempotency)
        return rows, records

    async def _drain(self, stopping: asyncio.Event, step: Callable[[], Awaitable[int]]) -> int:
        total = 0
        while not stopping.is_set():
            deleted = await step()
            total += deleted
            if deleted < self._batch:
                break
            await asyncio.sleep(0.05)  # let the claims through between batches
        return total

    async def close(self) -> None:
        await self._engine.dispose()

    async def _delete_published(self) -> int:
        async with asyncio.timeout(QUERY_TIMEOUT), self._engine.begin() as conn:
            result = await conn.exec_driver_sql(
                DELETE_PUBLISHED, (float(self._retention), self._batch)
            )
        return int(getattr(result, "rowcount", 0) or 0)

    async def _purge_idempotency(self) -> int:
        async with asyncio.timeout(QUERY_TIMEOUT), self._engine.begin() as conn:
            result = await conn.exec_driver_sql(
                PURGE_EXPIRED, (self._idempotency_ttl.total_seconds(), self._batch)
            )
        return int(getattr(result, "rowcount", 0) or 0)
