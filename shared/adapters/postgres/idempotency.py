"""The `idempotency_keys` repository: stored responses of POSTs made with an `Idempotency-Key`.

A request takes a transaction-scoped advisory lock on (owner, key): a concurrent repeat finds it
taken and is refused (409) instead of waiting (the lock's name gives the owner's length first,
so no other (owner, key) pair spells the same name: user `a:b`'s key `c` is not user `a`'s key
`b:c`); the lock dies with the transaction, so a crash
never leaves a key stuck. The response is stored in the same transaction as the work it
answers, so a stored response always matches what was committed. Plain prepared SQL
(`shared.adapters.postgres.sql`) on the unit of work's asyncpg connection.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.adapters.postgres.sql import Connection, affected, jsonb
from shared.domain.records import StoredResponse

_TRY_LOCK = "SELECT pg_try_advisory_xact_lock(hashtextextended($1, 7))"
_FIND = (
    "SELECT request_hash, response_status, response_body FROM idempotency_keys "
    "WHERE owner_id = $1 AND key = $2 AND created_at >= $3"
)
_SAVE = (
    "INSERT INTO idempotency_keys (owner_id, key, request_hash, response_status, response_body) "
    "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (owner_id, key) DO UPDATE SET "
    "request_hash = EXCLUDED.request_hash, response_status = EXCLUDED.response_status, "
    "response_body = EXCLUDED.response_body, created_at = now()"
)
_PURGE = (
    "DELETE FROM idempotency_keys WHERE ctid IN (SELECT ctid FROM idempotency_keys "
    "WHERE created_at < now() - make_interval(secs => $1) LIMIT $2)"
)


def lock_name(owner_id: str, key: str) -> str:
    """The advisory lock's name for (owner, key): one name per pair, whatever ':' they hold."""
    return f"idempotency:{len(owner_id)}:{owner_id}:{key}"


class IdempotencyRepository:
    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def try_lock(self, owner_id: str, key: str) -> bool:
        return bool(await self._conn.fetchval(_TRY_LOCK, lock_name(owner_id, key)))

    async def find(self, owner_id: str, key: str, not_before: datetime) -> StoredResponse | None:
        row = await self._conn.fetchrow(_FIND, owner_id, key, not_before)
        return StoredResponse(row[0], row[1], row[2]) if row else None

    async def save(
        self, owner_id: str, key: str, request_hash: str, status_code: int, body: Any
    ) -> None:
        """Store the response; an expired record under the same key is replaced."""
        await self._conn.execute(_SAVE, owner_id, key, request_hash, status_code, jsonb(body))

    async def purge(self, older_than_seconds: float, limit: int = 1000) -> int:
        """Delete up to `limit` records older than `older_than_seconds` (the API's TTL); how
        many went. The relay's housekeeping runs it, in batches."""
        return affected(await self._conn.execute(_PURGE, float(older_than_seconds), limit))
