"""The private servers fault tests stop and restart: they really stop, come back, and are private.

Every test also checks that the shared PostgreSQL and Redis kept running throughout (same
postmaster start time, same Redis run id): a fault test must never take them down.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
import redis

from harness import resources as res
from harness.servers import PrivatePostgres, PrivateRedis


def pg_fetch(url: str, query: str) -> Any:
    async def fetch() -> Any:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            return await conn.fetchval(query)
        finally:
            await conn.close()

    return res.run_blocking(fetch)


def pg_execute(url: str, *statements: str) -> None:
    async def execute() -> None:
        conn = await asyncpg.connect(url, timeout=10)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    res.run_blocking(execute)


def shared_identity() -> tuple[Any, str]:
    """The shared servers' start: PostgreSQL's postmaster start time, Redis's run id."""
    started = pg_fetch(res.PG_ADMIN, "SELECT pg_postmaster_start_time()")
    client = redis.Redis.from_url(f"{res.REDIS_BASE}/0")
    try:
        run = str(client.info("server")["run_id"])
    finally:
        client.close()
    return started, run


@pytest.fixture(name="shared_untouched")
def shared_untouched_fixture() -> Iterator[None]:
    before = shared_identity()
    yield
    assert shared_identity() == before, "the shared PostgreSQL or Redis was restarted"


@pytest.mark.usefixtures("shared_untouched")
def test_private_postgres_stops_and_comes_back_with_its_data(
    private_postgres: PrivatePostgres,
) -> None:
    url = private_postgres.create_database("faults_probe")
    assert f":{private_postgres.port}/faults_probe" in url
    pg_execute(url, "CREATE TABLE probe (n int)")

    for n, mode in enumerate(("immediate", "fast", "immediate")):
        # What was committed just before the stop, even an immediate one, is there after.
        pg_execute(url, f"INSERT INTO probe VALUES ({n})")
        private_postgres.stop(mode)
        assert not private_postgres.running()
        with pytest.raises(ConnectionRefusedError):
            pg_fetch(url, "SELECT 1")
        private_postgres.start()
        assert pg_fetch(url, "SELECT count(*) FROM probe") == n + 1

    private_postgres.restart()
    assert pg_fetch(private_postgres.admin_url, "SELECT current_setting('port')") == str(
        private_postgres.port
    )
    assert pg_fetch(private_postgres.admin_url, "SELECT current_setting('fsync')") == "off"


@pytest.mark.usefixtures("shared_untouched")
def test_private_redis_comes_back_empty_on_the_same_port(private_redis: PrivateRedis) -> None:
    client = redis.Redis.from_url(private_redis.url(3), socket_timeout=5)
    try:
        client.set("probe", "1")
        private_redis.stop()
        with pytest.raises(redis.ConnectionError):
            client.ping()
        private_redis.start()
        assert client.get("probe") is None
        client.set("probe", "2")
        private_redis.restart()
        assert client.ping()
        assert client.dbsize() == 0
    finally:
        client.close()


@pytest.mark.usefixtures("shared_untouched")
def test_isolated_on_puts_database_and_redis_on_the_private_servers(
    private_postgres: PrivatePostgres, private_redis: PrivateRedis
) -> None:
    with res.isolated_on("taskrelay_test_private", private_postgres, private_redis) as resources:
        assert f"127.0.0.1:{private_postgres.port}/" in resources.database_url
        assert resources.redis_url == private_redis.url(0)
        assert pg_fetch(resources.database_url, "SELECT to_regclass('outbox')::text") == "outbox"
        assert resources.vhost.startswith("taskrelay-test-private-")


def test_destroy_removes_the_cluster() -> None:
    server = PrivatePostgres()
    with server:
        assert server.running()
    assert not server.running()
    assert not server.base_dir.exists()
