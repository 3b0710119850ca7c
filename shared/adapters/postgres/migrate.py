"""`taskrelay migrate`: create the database if it is missing, then upgrade to head.

Idempotent, and safe to run from several processes at once: CREATE DATABASE races are
absorbed, and the migrations themselves run under an advisory lock (see migrations/env.py).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
from alembic import command
from alembic.config import Config

from shared.adapters.unavailable import POSTGRES, translated
from shared.config.settings import DatabaseSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(settings: DatabaseSettings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["url"] = settings.migrations_url
    return config


async def ensure_database(settings: DatabaseSettings) -> bool:
    """Create the database named in the URL if it does not exist; True if it was created."""
    name = settings.database_name
    with translated(POSTGRES, settings.asyncpg_dsn, any_error=True):
        conn = await asyncpg.connect(settings.admin_dsn, timeout=10)
    try:
        if await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
        quoted = '"' + name.replace('"', '""') + '"'
        try:
            await conn.execute(f"CREATE DATABASE {quoted}")
        except (asyncpg.DuplicateDatabaseError, asyncpg.UniqueViolationError):
            return False
        return True
    finally:
        await conn.close()


def migrate(settings: DatabaseSettings) -> bool:
    """Ensure the database, then upgrade to head; True if the database was created."""
    created = asyncio.run(ensure_database(settings))
    command.upgrade(alembic_config(settings), "head")
    return created
