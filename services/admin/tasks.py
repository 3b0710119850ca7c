"""`taskrelay admin tasks`: tasks that wait, fail or keep being recovered, and their retry or
cancel through the very services the HTTP routes call (`shared.service.tasks`).

A retry or cancel runs as the task's owner would have it run: the state machine decides, the
notification and the job dispatch go into the outbox in the same transaction, and the change
is traced like a request (its rows carry a new trace's `traceparent`). Every id is checked
before anything changes, so an unknown one changes nothing; a task the state machine will not
move is reported in one line, and the others are still acted on.
"""

from __future__ import annotations

import argparse
from uuid import UUID

from services.admin.parser import refuse
from services.admin.render import age, print_json, print_table
from shared.adapters.postgres import UnitOfWorkFactory
from shared.adapters.probes import Probes
from shared.config.settings import Settings
from shared.domain import ATTENTION, Status, TaskFilter
from shared.errors import Conflict, NotFound
from shared.observability.logging import get_logger
from shared.observability.tracing import traced
from shared.service import cancel_task, get_task_view, retry_task

log = get_logger(__name__)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    await Probes(settings).start_up()
    uow_factory = UnitOfWorkFactory(settings.database, pool_size=1)
    try:
        if args.action in ("retry", "cancel"):
            return await _act(uow_factory, args.action, args.ids)
        wanted = TaskFilter(
            statuses=(Status(args.status),) if args.status else ATTENTION,
            older_than_seconds=args.older_than,
            owner_id=args.user,
            limit=args.limit,
        )
        async with uow_factory() as uow:
            found = await uow.tasks.overview(wanted)
    finally:
        await uow_factory.close()
    if args.json:
        print_json({"tasks": [task.as_dict() for task in found]})
        return 0
    print_table(
        ["TASK_ID", "OWNER", "STATUS", "AGE", "DONE/FAILED/TOTAL", "RECOVERIES", "ERROR"],
        [
            [
                t.task_id,
                t.owner_id,
                t.status,
                age(t.age_seconds),
                f"{t.items_completed}/{t.items_failed}/{t.items_total}",
                t.recoveries,
                t.error_message,
            ]
            for t in found
        ],
        empty="no tasks match",
    )
    return 0


async def _act(uow_factory: UnitOfWorkFactory, action: str, ids: list[UUID]) -> int:
    owners: dict[UUID, str] = {}
    async with uow_factory() as uow:
        for task_id in dict.fromkeys(ids):
            owner = await uow.tasks.owner(task_id)
            if owner is None:
                raise NotFound(f"task {task_id} not found: nothing was changed")
            owners[task_id] = owner
    refused = 0
    for task_id, owner in owners.items():
        try:
            await _one(uow_factory, action, task_id, owner)
        except Conflict as exc:
            refused += 1
            refuse(f"taskrelay admin tasks {action}", f"task {task_id}: {exc}")
    return 2 if refused else 0


async def _one(uow_factory: UnitOfWorkFactory, action: str, task_id: UUID, owner: str) -> None:
    with traced(f"admin tasks {action}") as trace_id:
        async with uow_factory() as uow:
            before = (await get_task_view(uow, owner, task_id)).status.value
            if action == "retry":
                result = await retry_task(uow, owner, task_id)
                view, items = result.task, result.total_items
            else:
                view, items = await cancel_task(uow, owner, task_id), 0
            await uow.commit()
        changed = {"task_id": str(task_id), "owner_id": owner, "status_before": before}
        log.info(f"admin_task_{action}", **changed, status=view.status.value, items=items)
    done = "retried" if action == "retry" else "cancelled"
    queued = f", {items} item(s) queued again" if action == "retry" else ""
    print(f"{done} task {task_id}: {before} -> {view.status.value}{queued} (trace {trace_id})")
