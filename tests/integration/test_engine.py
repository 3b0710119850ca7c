"""The engine replaces a pooled connection that died while idle (a PostgreSQL restart, a cut
link) before handing it out, so the first request after the outage does not fail."""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy import text

from shared.db import create_engine
from shared.settings import DatabaseSettings, Settings
from tests.support.proxy import TcpProxy


async def test_a_connection_cut_while_idle_is_replaced(settings: Settings) -> None:
    parts = urlsplit(settings.database.asyncpg_dsn)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    via_proxy = DatabaseSettings(
        url=settings.database.url.replace(
            f"{parts.hostname}:{parts.port}", f"127.0.0.1:{proxy.port}"
        )
    )
    engine = create_engine(via_proxy, pool_size=1, idle_ping_seconds=0.0)
    try:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar() == 1
        proxy.cut()  # the pooled connection's socket is closed under it
        proxy.restore()
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 2"))).scalar() == 2
    finally:
        await engine.dispose()
        proxy.close()
