"""The lease watchdog every `taskrelay worker` runs: no task stays `processing` for a dead job.

Every `watchdog_interval_seconds` it resumes or fails the tasks whose job stopped renewing its
lease (`shared.service.recovery`), so a SIGKILLed worker's task leaves `processing` within
`lease_seconds + watchdog_interval_seconds` plus the time the resumed job takes, instead of
waiting the ten-plus minutes RQ's own abandoned-job cleanup needs. Several workers running it at
once is safe: each recovery happens under the task's row lock. It also forgets inbox entries
older than `inbox_retention_seconds`.
"""

from __future__ import annotations

import asyncio
import time

from shared.db.uow import UnitOfWorkFactory
from shared.db.work import InboxRepository
from shared.logging import get_logger
from shared.service.recovery import sweep_lapsed_leases
from shared.settings import WorkerSettings

log = get_logger(__name__)

PURGE_INTERVAL_SECONDS = 600.0


async def run_watchdog(uow_factory: UnitOfWorkFactory, settings: WorkerSettings) -> None:
    """Sweep until cancelled; a failed sweep (database down) is logged and tried again."""
    last_purge = 0.0
    while True:
        try:
            recovered = await sweep_lapsed_leases(uow_factory, settings.max_resumes)
            if recovered:
                log.info("watchdog_recovered", tasks=len(recovered))
            if time.monotonic() - last_purge > PURGE_INTERVAL_SECONDS:
                await _purge_inbox(uow_factory, settings.inbox_retention_seconds)
                last_purge = time.monotonic()
        except Exception as exc:
            log.warning("watchdog_sweep_failed", error=str(exc) or type(exc).__name__)
        await asyncio.sleep(settings.watchdog_interval_seconds)


async def _purge_inbox(uow_factory: UnitOfWorkFactory, older_than: float) -> None:
    async with uow_factory() as uow:
        removed = await InboxRepository(uow.connection).purge(older_than)
        await uow.commit()
    if removed:
        log.info("job_inbox_purged", rows=removed)
