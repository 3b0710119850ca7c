"""The async engine factory. Nothing connects until the engine is first used.

The engine serves SQLAlchemy's users: the relay's housekeeping and tests' ad-hoc queries. Units
of work run on an asyncpg pool of their own (`shared.adapters.postgres.uow.UnitOfWorkFactory`).

A connection of the engine's pool is pinged before use only when it sat idle for a while: that
catches a restarted PostgreSQL as `pool_pre_ping` does, without the three round trips (BEGIN,
probe, ROLLBACK on asyncpg) that `pool_pre_ping` adds to every checkout of a busy pool.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.config.settings import DatabaseSettings

IDLE_PING_SECONDS = 5.0
"""A connection idle longer than this is pinged at checkout; a failed ping replaces it."""
CONNECT_TIMEOUT_SECONDS = 10.0
"""A connection attempt that hangs (an unreachable host) fails after this, not asyncpg's 60 s."""


def create_engine(
    settings: DatabaseSettings,
    *,
    pool_size: int | None = None,
    idle_ping_seconds: float = IDLE_PING_SECONDS,
) -> AsyncEngine:
    engine = create_async_engine(
        settings.sqlalchemy_url,
        pool_size=pool_size or settings.pool_size,
        max_overflow=pool_size or settings.pool_size,
        pool_recycle=1800,
        connect_args={"timeout": CONNECT_TIMEOUT_SECONDS},
    )
    _ping_when_idle(engine, idle_ping_seconds)
    return engine


def _ping_when_idle(engine: AsyncEngine, idle_ping_seconds: float) -> None:
    pool = engine.sync_engine.pool

    @event.listens_for(pool, "checkin")
    def _idle_from(_: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(pool, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _: Any) -> None:
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < idle_ping_seconds:
            return
        try:
            dbapi_connection.ping()
        except Exception as exc:  # any failure means this connection is gone
            raise DisconnectionError(f"idle connection failed its ping: {exc}") from exc
