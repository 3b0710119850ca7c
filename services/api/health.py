"""`GET /health` of the API process: which of its dependencies answer, and its open sockets.

For load balancers and compose health checks. `database` is whether PostgreSQL answered a query
at most 1 s ago; `broker` is whether the gateway's RabbitMQ link is up (without it, sockets get
no live updates). 200 only when both are up; otherwise 503 with `status` `down` (no database: no
request can be served) or `degraded` (the REST routes work, live updates do not).

`/health` and `/readyz` need no token and are not rate limited (a load balancer's probes must
not share a budget a flood can exhaust), so they must not cost the database a query each:
`DatabaseProbe` answers from a result at most `MAX_AGE_SECONDS` old, and while a query is out,
every probe waits for that one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.openapi import ResponseSpec

from shared.adapters.postgres import UnitOfWorkFactory
from shared.errors import DependencyUnavailable

PROBE_TIMEOUT = 2.0
MAX_AGE_SECONDS = 1.0


class ApiHealth(msgspec.Struct):
    status: str
    """`ok`, `degraded` (the broker link is down) or `down` (PostgreSQL does not answer)."""
    database: str
    """`up` or `down`."""
    broker: str
    """`up` or `down`: the gateway's RabbitMQ link."""
    sockets: int


@get(
    "/health",
    tags=["operations"],
    responses={503: ResponseSpec(ApiHealth, description="a dependency is down: see its field")},
)
async def health(request: Request[Any, Any, Any]) -> Response[ApiHealth]:
    """Liveness and readiness of this API instance; 503 when a dependency is down."""
    probe: DatabaseProbe = request.app.state.database_probe
    database = "up" if await probe.answers() else "down"
    gateway = getattr(request.app.state, "gateway", None)
    broker = "up" if gateway is not None and gateway.broker_connected else "down"
    if database == "down":
        status = "down"
    elif broker == "down":
        status = "degraded"
    else:
        status = "ok"
    body = ApiHealth(
        status=status,
        database=database,
        broker=broker,
        sockets=gateway.sockets if gateway is not None else 0,
    )
    return Response(body, status_code=200 if status == "ok" else 503)


async def database_answers(uow_factory: UnitOfWorkFactory) -> bool:
    """Does PostgreSQL answer `SELECT 1` within PROBE_TIMEOUT? (`/health` and `/readyz`)"""
    try:
        async with asyncio.timeout(PROBE_TIMEOUT), uow_factory() as uow:
            await uow.ping()
    except (DependencyUnavailable, TimeoutError):
        return False
    return True


class DatabaseProbe:
    """`check()`'s last answer while it is under `max_age` seconds old (counted from when its
    query started); else one new check, shared by every caller that comes meanwhile."""

    def __init__(
        self,
        check: Callable[[], Awaitable[bool]],
        max_age: float = MAX_AGE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._check, self._max_age, self._clock = check, max_age, clock
        self._answer = False
        self._started: float | None = None
        self._pending: asyncio.Future[bool] | None = None

    async def answers(self) -> bool:
        if self._started is not None and self._clock() - self._started < self._max_age:
            return self._answer
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._refresh())
        return await asyncio.shield(self._pending)  # a caller that gives up cancels no one else

    async def _refresh(self) -> bool:
        started = self._clock()
        try:
            self._answer = await self._check()
            self._started = started
        finally:
            self._pending = None
        return self._answer
