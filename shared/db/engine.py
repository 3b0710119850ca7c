"""The async engine factory. Nothing connects until the engine is first used."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.settings import DatabaseSettings


def create_engine(settings: DatabaseSettings, *, pool_size: int | None = None) -> AsyncEngine:
    """An asyncpg-backed engine; `pool_pre_ping` so a restarted PostgreSQL costs no request."""
    return create_async_engine(
        settings.sqlalchemy_url,
        pool_size=pool_size or settings.pool_size,
        max_overflow=pool_size or settings.pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
    )
