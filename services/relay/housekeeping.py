"""Backlog figures for `/health`, and cleanup of what no longer needs to be kept.

These run in units of work on a small pool of their own, apart from the dedicated session, so a
slow count or a long delete never delays a claim. Cleanup deletes in small batches (each its
own short transaction) so the table and its indexes stay small without long locks or bloat
spikes. The statements are the outbox's (`OutboxDelivery`) and the idempotency records' own
repositories'.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta

from shared.adapters.postgres import UnitOfWorkFactory
from shared.adapters.postgres.outbox import Backlog
from shared.adapters.unavailable import POSTGRES, translated

QUERY_TIMEOUT = 10.0
"""Bound on each unit of work, connecting included: a silent network must not hold up a stop."""


class Housekeeping:
    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        *,
        retention_seconds: float,
        idempotency_ttl: timedelta,
        batch_size: int,
    ) -> None:
        self._uow_factory = uow_factory
        self._retention = retention_seconds
        self._idempotency_ttl = idempotency_ttl
        """The API's: a stored Idempotency-Key response older than this is purged."""
        self._batch = batch_size
        self._url = uow_factory.database.asyncpg_dsn
        """Named (without its password) when PostgreSQL cannot be reached."""

    async def backlog(self) -> Backlog:
        with translated(POSTGRES, self._url, "backlog", any_error=True):
            async with asyncio.timeout(QUERY_TIMEOUT), self._uow_factory() as uow:
                return await uow.outbox_delivery.backlog()

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
        await self._uow_factory.close()

    async def _delete_published(self) -> int:
        async with asyncio.timeout(QUERY_TIMEOUT), self._uow_factory() as uow:
            deleted = await uow.outbox_delivery.delete_published(self._retention, self._batch)
            await uow.commit()
        return deleted

    async def _purge_idempotency(self) -> int:
        ttl = self._idempotency_ttl.total_seconds()
        async with asyncio.timeout(QUERY_TIMEOUT), self._uow_factory() as uow:
            purged = await uow.idempotency.purge(ttl, self._batch)
            await uow.commit()
        return purged
