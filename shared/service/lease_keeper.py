"""Keeping a job's lease alive from a thread of its own.

The job's event loop runs the content generator; a coroutine generator that computes without
awaiting (CPU-bound code inside `async def`) stops that loop, and with it any heartbeat written
as a coroutine there. A lease must not lapse while its job is healthy, so the heartbeat runs in
its own thread, with its own event loop and its own units of work: Python switches threads
every few milliseconds even while the other one computes.

The keeper does not know where its units of work come from: the worker's composition root
(`services.worker.jobs.generate`) hands it an opener of a unit-of-work factory of its own (a
one-connection pool, made and closed in the keeper's event loop, apart from the job's pool),
and `ContentJob` receives the whole heartbeat as a `KeepLease`, so a unit test gives it a fake.

A renewal that finds the lease taken back (its generation changed) sets `lost`: the job stops
at its next boundary, where the fencing check refuses its write anyway.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Protocol

from shared.domain.records import Lease
from shared.observability.logging import get_logger
from shared.service.ports import AbstractUnitOfWorkFactory

log = get_logger(__name__)

RETRY_SECONDS = 1.0
"""After a failed renewal (the database blinked), try again this soon."""

OwnUnitsOfWork = Callable[[], AbstractAsyncContextManager[AbstractUnitOfWorkFactory]]
"""Opens, in the calling thread's event loop, a unit-of-work factory for the keeper alone, and
closes it on exit."""


class Heartbeat(Protocol):
    """A lease being kept alive, as the job sees it."""

    @property
    def lost(self) -> bool:
        """True once a renewal found the lease taken back by the reconciler."""
        ...

    def stop(self) -> None:
        """Stop renewing (blocks until the renewals have stopped)."""
        ...


KeepLease = Callable[[Lease, float], Heartbeat]
"""Starts keeping `lease` alive, `seconds` at a time, until its heartbeat is stopped."""


class LeaseKeeper:
    """The real `Heartbeat`: renews the lease every third of its duration, in its own thread."""

    def __init__(self, own_uows: OwnUnitsOfWork, lease: Lease, lease_seconds: float) -> None:
        self._own_uows = own_uows
        self._lease = lease
        self._seconds = lease_seconds
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"lease-{lease.task_id}", daemon=True
        )

    @classmethod
    def keeping(cls, own_uows: OwnUnitsOfWork) -> KeepLease:
        """The `KeepLease` a job receives: a started keeper per lease, renewing through
        units of work that `own_uows` opens in the keeper's thread."""
        return lambda lease, seconds: cls(own_uows, lease, seconds).start()

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
        async with self._own_uows() as uow_factory:
            delay = self._seconds / 3
            # This loop has nothing else to run: blocking it while waiting costs nothing.
            while not self._stop.wait(delay):
                delay = await self._renew(uow_factory)
                if self._lost.is_set():
                    return

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
