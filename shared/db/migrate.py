"""`taskrelay migrate`: create the database if it is missing, then upgrade to head.

Idempotent, and safe to run from several processes at once: CREATE DATABASE races are
absorbed, and the migrations themselves run under an advisory lock (see migrations/env.py).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from alembic import command
from alembic.config import Config

from shared.dependencies import POSTGRES, unavailable
from shared.settings import DatabaseSettings

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(settings: DatabaseSettings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["url"] = settings.sqlalchemy_url
    return config


async def ensure_database(settings: DatabaseSettings) -> bool:
    """Create the database named in the URL if it does not exist; True if it was created."""
    parts = urlsplit(settings.asyncpg_dsn)
    name = parts.path.lstrip("/") or "postgres"
    admin_dsn = urlunsplit(parts._replace(path="/postgres"))
    try:
        conn = await asyncpg.connect(admin_dsn, timeout=10)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise unavailable(POSTGRES, settings.asyncpg_dsn, exc) from exc
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
