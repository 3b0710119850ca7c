"""`GET /health` of the API process: can it reach PostgreSQL, and how many sockets it serves.

For load balancers and compose health checks; 200 when the database answers, 503 otherwise.
"""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Request, Response, get
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from shared.db import UnitOfWorkFactory

PROBE_TIMEOUT = 2.0


class ApiHealth(msgspec.Struct):
    status: str
    database: str
    sockets: int


@get("/health", tags=["operations"])
async def health(request: Request[Any, Any, Any]) -> Response[ApiHealth]:
    """Liveness and readiness of this API instance."""
    factory: UnitOfWorkFactory = request.app.state.uow_factory
    database = "up"
    try:
        async with asyncio.timeout(PROBE_TIMEOUT), factory() as uow:
            await uow.connection.execute(text("SELECT 1"))
    except (OSError, TimeoutError, SQLAlchemyError):
        database = "down"
    gateway = getattr(request.app.state, "gateway", None)
    body = ApiHealth(
        status="ok" if database == "up" else "down",
        database=database,
        sockets=gateway.sockets if gateway is not None else 0,
    )
    return Response(body, status_code=200 if body.status == "ok" else 503)
