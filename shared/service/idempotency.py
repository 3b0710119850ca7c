"""`Idempotency-Key` semantics (docs/protocol.md §6), independent of HTTP.

Same user and key within the TTL: the stored response, nothing written. Same key with a
different request: 422. Same key while the first request still runs: 409.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.domain.records import StoredResponse
from shared.errors import IdempotencyConflict, IdempotencyMismatch, InvalidInput
from shared.service.ports import AbstractUnitOfWork

MAX_KEY_LENGTH = 255


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


async def claim(
    uow: AbstractUnitOfWork, owner_id: str, key: str, fingerprint: str, ttl_seconds: float
) -> StoredResponse | None:
    """Take the key for this transaction; the stored response if the request was answered."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidInput(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters")
    if not await uow.idempotency.try_lock(owner_id, key):
        raise IdempotencyConflict("a request with this Idempotency-Key is still being processed")
    not_before = datetime.now(UTC) - timedelta(seconds=ttl_seconds)
    stored = await uow.idempotency.find(owner_id, key, not_before)
    if stored is not None and stored.request_hash != fingerprint:
        raise IdempotencyMismatch("this Idempotency-Key was used with a different request")
    return stored


async def remember(
    uow: AbstractUnitOfWork, owner_id: str, key: str, fingerprint: str, status_code: int, body: Any
) -> None:
    """Store the response in the same transaction as the work it answers."""
    await uow.idempotency.save(owner_id, key, fingerprint, status_code, body)
