"""Parked outbox rows, read and put back in line: what an operator does after fixing a cause.

The relay parks a row after `max_attempts` failures (`OutboxDelivery.mark_failed`); a parked
row hides nothing, so later rows of its task may already be out. Replaying clears the parking
in one unit of work and NOTIFYs the relays, which then claim the rows like any other, in id order.
A replay that names a row of a task must name every earlier parked row of that task too (or
use all of them): a row is never put back ahead of an older one of its task that stays parked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from uuid import UUID

from shared.adapters.postgres import UnitOfWorkFactory
from shared.adapters.postgres.outbox import ParkedRow
from shared.adapters.unavailable import POSTGRES, translated
from shared.errors import InvalidInput, NotFound

QUERY_TIMEOUT = 10.0
ALL_ROWS = 2**62


class ParkedRows:
    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self._uow_factory = uow_factory
        self._url = uow_factory.database.asyncpg_dsn
        """Named (without its password) when PostgreSQL cannot be reached."""

    async def parked(self, limit: int = 1000) -> list[ParkedRow]:
        with translated(POSTGRES, self._url, "parked rows", any_error=True):
            async with asyncio.timeout(QUERY_TIMEOUT), self._uow_factory() as uow:
                return await uow.outbox_delivery.parked(limit)

    async def replay(self, ids: Sequence[int] | None) -> list[tuple[int, UUID]]:
        """Put these parked rows (None: every one) back in line; (id, task_id) of each.

        NotFound if a named row is not parked; InvalidInput if an earlier parked row of a
        named row's task is left out. Either way nothing changes."""
        with translated(POSTGRES, self._url, "replay", any_error=True):
            async with asyncio.timeout(QUERY_TIMEOUT), self._uow_factory() as uow:
                delivery = uow.outbox_delivery
                if ids is None:
                    chosen = [row.id for row in await delivery.parked(ALL_ROWS)]
                else:
                    chosen = list(ids)
                if chosen:
                    _check_order(chosen, await delivery.lock_parked_of_tasks(chosen))
                replayed = await delivery.replay(chosen)
                await uow.commit()
        return replayed


def _check_order(chosen: Sequence[int], parked: Sequence[tuple[int, UUID]]) -> None:
    """Every named id is parked, and no parked row of its task older than it is left out."""
    parked_ids = {row_id for row_id, _ in parked}
    missing = [row_id for row_id in chosen if row_id not in parked_ids]
    if missing:
        raise NotFound(f"outbox row {missing[0]} is not parked (unknown, published or in line)")
    named = set(chosen)
    newest: dict[UUID, int] = {}
    for row_id, task_id in parked:
        if row_id in named:
            newest[task_id] = max(newest.get(task_id, row_id), row_id)
    left_out = [
        (row_id, task_id)
        for row_id, task_id in parked
        if row_id not in named and task_id in newest and row_id < newest[task_id]
    ]
    if left_out:
        row_id, task_id = left_out[0]
        raise InvalidInput(
            f"outbox row {row_id} of task {task_id} is parked and older than a row named: "
            "name it too (a task's rows go out in order), or use --all-parked"
        )
