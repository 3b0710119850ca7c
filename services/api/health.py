"""`GET /health` of the API process: which of its dependencies answer, and its open sockets.

For load balancers and compose health checks. `database` is whether PostgreSQL answered a query
at most 1 s ago; `broker` is whether the gateway's RabbitMQ link is up (without it, sockets get
no live updates). 200 only when both are up; otherwise 503 with `status` `down` (no database: no
request can be served) or `degraded` (the REST routes work, live updates do not).

`database` comes from the process's one `Probes` object (`shared.adapters.probes`), the same
answer `/readyz` gives: at most 1 s old, one query in flight however many probes ask, so a
flood of them costs PostgreSQL at most one query a second.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.openapi import ResponseSpec

from shared.adapters.probes import Probes


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
    probes: Probes = request.app.state.probes
    database = "up" if await probes.database_answers() else "down"
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
