"""Start-up checks: can this process reach PostgreSQL? One clear line when it cannot."""

from __future__ import annotations

import asyncpg

from shared.dependencies import POSTGRES, redact, unavailable
from shared.errors import DependencyUnavailable
from shared.settings import DatabaseSettings


async def probe_database(settings: DatabaseSettings, *, connect_timeout: float = 5.0) -> None:
    try:
        conn = await asyncpg.connect(settings.asyncpg_dsn, timeout=connect_timeout)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise unavailable(POSTGRES, settings.asyncpg_dsn, exc) from exc
    try:
        if not await conn.fetchval("SELECT to_regclass('roadmap_tasks') IS NOT NULL"):
            raise DependencyUnavailable(
                POSTGRES,
                redact(settings.asyncpg_dsn),
                "the schema is missing",
                "Run: taskrelay migrate",
            )
    finally:
        await conn.close()
