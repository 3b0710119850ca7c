"""`taskrelay admin outbox`: the relay's own figures and parked rows, and their replay.

The backlog and the oldest unpublished age are the relay's `/health` figures
(`Housekeeping.backlog`); the parked rows and their replay are `services.relay.parking`, the
inverse of the relay's own parking, so a replayed row goes out exactly as any other. Both run
in units of work of one small pool.
"""

from __future__ import annotations

import argparse
from datetime import timedelta

from services.admin.parser import refuse
from services.admin.render import age, print_json, print_table
from services.relay.housekeeping import Housekeeping
from services.relay.parking import ParkedRows
from shared.adapters.postgres import UnitOfWorkFactory
from shared.adapters.probes import Probes
from shared.config.settings import Settings
from shared.observability.logging import get_logger

log = get_logger(__name__)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "replay" and bool(args.ids) == args.all_parked:
        return refuse("taskrelay admin outbox replay", "name parked row ids, or --all-parked")
    await Probes(settings).start_up()
    uow_factory = UnitOfWorkFactory(settings.database, pool_size=1)
    housekeeping = Housekeeping(
        uow_factory,
        retention_seconds=settings.relay.retention_seconds,
        idempotency_ttl=timedelta(seconds=settings.api.idempotency_ttl_seconds),
        batch_size=settings.relay.cleanup_batch_size,
    )
    parked = ParkedRows(uow_factory)
    try:
        if args.action == "replay":
            return await _replay(parked, None if args.all_parked else args.ids)
        backlog = await housekeeping.backlog()
        rows = await parked.parked()
    finally:
        await housekeeping.close()
    if args.json:
        print_json(
            {
                "backlog": backlog.pending,
                "oldest_pending_age_seconds": backlog.oldest_age_seconds,
                "parked": [
                    {
                        "id": row.id,
                        "task_id": str(row.task_id),
                        "attempts": row.attempts,
                        "last_error": row.last_error,
                    }
                    for row in rows
                ],
            }
        )
        return 0
    print(f"backlog: {backlog.pending} unpublished, oldest {age(backlog.oldest_age_seconds)}")
    print(f"parked: {backlog.parked}")
    print_table(
        ["ID", "TASK_ID", "KIND", "ATTEMPTS", "PARKED_FOR", "LAST_ERROR"],
        [[r.id, r.task_id, r.kind, r.attempts, age(r.parked_seconds), r.last_error] for r in rows],
        empty="no parked rows",
    )
    return 0


async def _replay(parked: ParkedRows, ids: list[int] | None) -> int:
    replayed = await parked.replay(ids)
    for row_id, task_id in replayed:
        log.info("admin_outbox_row_replayed", row_id=row_id, task_id=str(task_id))
    listed = ", ".join(str(row_id) for row_id, _ in replayed) or "none"
    print(f"put {len(replayed)} parked row(s) back in line: {listed}")
    return 0
