"""The deployment-wide cap on model requests in flight (`TASKRELAY_MODEL_MAX_IN_FLIGHT`).

Every work horse of every worker, on every machine, takes a slot before it sends a request and
gives it back when the answer is in. The slots are one Redis sorted set (the deployment's Redis
database keeps deployments apart): a member per request in flight, scored with the time its
slot expires. Taking a slot is one Lua script, so it is atomic across processes: drop the
expired members, then add ours if fewer than the limit remain. A holder that dies (SIGKILL, a
lost machine) never gives its slot back, and it comes back by itself when its score passes;
the score is the request's own timeout plus a margin, and the request is bounded by that
timeout, so a live holder's slot never expires under it. Time is Redis's (`TIME`), so the
machines' clocks do not matter.

A waiter polls with short jittered delays (`shared.domain.backoff`): no slot is ever handed over
in Redis, so a waiter that dies leaves nothing behind. While Redis is away, taking a slot waits
with backoff too; the item's own timeout bounds the wait, as it bounds everything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from shared.domain.backoff import Backoff
from shared.observability.logging import get_logger

log = get_logger(__name__)

SLOTS_KEY = "taskrelay:model:in-flight"
MARGIN_SECONDS = 10.0
"""Added to a request's timeout to make its slot's lifetime."""

_TAKE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
return 0
"""


class InFlightLimit:
    """At most `limit` holders at once across the deployment; build one per event loop."""

    def __init__(
        self,
        client: aioredis.Redis,
        limit: int,
        slot_seconds: float,
        *,
        key: str = SLOTS_KEY,
        margin: float = MARGIN_SECONDS,
    ) -> None:
        self._client, self._limit, self._key = client, limit, key
        self._slot_ms = max(1, int((slot_seconds + margin) * 1000))
        self._take = client.register_script(_TAKE)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot for the body; waits (polling) until one is free."""
        token = uuid.uuid4().hex
        await self._acquire(token)
        try:
            yield
        finally:
            # Shielded: a cancelled item (its timeout) still gives its slot back at once.
            await asyncio.shield(self._release(token))

    async def holders(self) -> int:
        """Slots held now (expired ones not counted); for tests and the benchmark."""
        return int(await self._client.zcard(self._key))

    async def _acquire(self, token: str) -> None:
        polling = Backoff(base=0.01, cap=0.1)
        outage = Backoff(base=0.2, cap=5.0)
        while True:
            try:
                taken = await self._take(keys=[self._key], args=[token, self._limit, self._slot_ms])
            except (RedisError, OSError) as exc:
                delay = outage.next()
                log.warning(
                    "model_slot_waiting_for_redis", error=str(exc), retry_in=round(delay, 2)
                )
                await asyncio.sleep(delay)
                continue
            if taken == 1:
                return
            await asyncio.sleep(polling.next())

    async def _release(self, token: str) -> None:
        try:
            await self._client.zrem(self._key, token)
        except (RedisError, OSError) as exc:  # the slot expires by itself
            log.warning("model_slot_not_released", error=str(exc))
