"""Keeping a job's lease alive from a thread of its own.

The job's event loop runs the content generator; a coroutine generator that computes without
awaiting (CPU-bound code inside `async def`) stops that loop, and with it any heartbeat written
as a coroutine there. A lease must not lapse while its job is healthy, so the heartbeat runs in
its own thread, with its own event loop and its own database connection: Python switches
threads every few milliseconds even while the other one computes.

A renewal that finds the lease taken back (its generation changed) sets `lost`: the job stops
at its next boundary, where the fencing check refuses its write anyway.
"""

from __future__ import annotations

import asyncio
import threading

from shared.adapters.postgres.uow import UnitOfWorkFactory
from shared.config.settings import DatabaseSettings
from shared.domain.records import Lease
from shared.observability.logging import get_logger
from shared.service.ports import AbstractUnitOfWorkFactory

log = get_logger(__name__)

RETRY_SECONDS = 1.0
"""After a failed renewal (the database blinked), try again this soon."""


class LeaseKeeper:
    def __init__(self, database: DatabaseSettings, lease: Lease, lease_seconds: float) -> None:
        self._database = database
        self._lease = lease
        self._seconds = lease_seconds
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"lease-{lease.task_id}", daemon=True
        )

    @property
    def lost(self) -> bool:
        """True once a renewal found the lease taken back by the reconciler."""
        return self._lost.is_set()

    def start(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        asyncio.run(self._beat())

    async def _beat(self) -> None:
        uow_factory = UnitOfWorkFactory(self._database, pool_size=1)
        delay = self._seconds / 3
        try:
            # This loop has nothing else to run: blocking it while waiting costs nothing.
            while not self._stop.wait(delay):
                delay = await self._renew(uow_factory)
                if self._lost.is_set():
                    return
        finally:
            await uow_factory.close()

    async def _renew(self, uow_factory: AbstractUnitOfWorkFactory) -> float:
        """One renewal; the wait before the next one."""
        lease = self._lease
        try:
            async with uow_factory() as uow:
                kept = await uow.leases.renew(lease, self._seconds)
                await uow.commit()
        except Exception as exc:  # the database blinked: the lease has time left, try soon
            log.warning("lease_heartbeat_failed", task_id=str(lease.task_id), error=str(exc))
            return RETRY_SECONDS
        if not kept:
            log.warning("lease_lost", task_id=str(lease.task_id), job_id=lease.holder)
            self._lost.set()
        return self._seconds / 3
