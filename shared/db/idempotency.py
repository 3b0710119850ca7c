"""Stored responses of POSTs made with an `Idempotency-Key`.

A request takes a transaction-scoped advisory lock on (owner, key): a concurrent repeat finds it
taken and is refused (409) instead of waiting; the lock dies with the transaction, so a crash
never leaves a key stuck. The response is stored in the same transaction as the work it
answers, so a stored response always matches what was committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from shared.db.tables import idempotency_keys


@dataclass(frozen=True, slots=True)
class StoredResponse:
    request_hash: str
    status_code: int
    body: Any


class IdempotencyRepository:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def try_lock(self, owner_id: str, key: str) -> bool:
        result = await self._conn.execute(
            text("SELECT pg_try_advisory_xact_lock(hashtextextended(:k, 7))"),
            {"k": f"idempotency:{owner_id}:{key}"},
        )
        return bool(result.scalar())

    async def find(self, owner_id: str, key: str, not_before: datetime) -> StoredResponse | None:
        query = select(
            idempotency_keys.c.request_hash,
            idempotency_keys.c.response_status,
            idempotency_keys.c.response_body,
        ).where(
            idempotency_keys.c.owner_id == owner_id,
            idempotency_keys.c.key == key,
            idempotency_keys.c.created_at >= not_before,
        )
        row = (await self._conn.execute(query)).first()
        return StoredResponse(row[0], row[1], row[2]) if row else None

    async def save(
        self, owner_id: str, key: str, request_hash: str, status_code: int, body: Any
    ) -> None:
        """Store the response; an expired record under the same key is replaced."""
        stmt = insert(idempotency_keys).values(
            owner_id=owner_id,
            key=key,
            request_hash=request_hash,
            response_status=status_code,
            response_body=body,
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["owner_id", "key"],
            set_={
                "request_hash": stmt.excluded.request_hash,
                "response_status": stmt.excluded.response_status,
                "response_body": stmt.excluded.response_body,
                "created_at": func.now(),
            },
        )
        await self._conn.execute(stmt)

    async def purge(self, older_than: timedelta, limit: int = 1000) -> int:
        """Delete up to `limit` expired records; returns how many went."""
        result = await self._conn.execute(
            text(
                "DELETE FROM idempotency_keys WHERE ctid IN (SELECT ctid FROM idempotency_keys "
                "WHERE created_at < now() - make_interval(secs => :s) LIMIT :n)"
            ),
            {"s": older_than.total_seconds(), "n": limit},
        )
        return int(getattr(result, "rowcount", 0) or 0)
