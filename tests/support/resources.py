"""Isolated resources on the shared servers: one database, vhost and Redis db per test run.

Parallel or repeated runs never see each other's data, and everything is removed at the end.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from dataclasses import dataclass
from urllib.parse import quote

import asyncpg
import redis

PG_ADMIN = os.environ.get("TASKRELAY_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
AMQP_BASE = os.environ.get("TASKRELAY_TEST_AMQP", "amqp://guest:guest@127.0.0.1:5672")
REDIS_BASE = os.environ.get("TASKRELAY_TEST_REDIS", "redis://127.0.0.1:6379")
SECRET = "test-secret-" + "x" * 40


def run_id() -> str:
    return uuid.uuid4().hex[:10]


@dataclass(frozen=True)
class Resources:
    database_url: str
    amqp_url: str
    redis_url: str
    vhost: str
    redis_db: int

    def env(self, **extra: str) -> dict[str, str]:
        """The environment a taskrelay process of this test run needs."""
        env = dict(os.environ)
        env.update(
            DATABASE_URL=self.database_url,
            AMQP_URL=self.amqp_url,
            REDIS_URL=self.redis_url,
            TASKRELAY_SECRET=SECRET,
            TASKRELAY_LOG_FORMAT="json",
        )
        env.update(extra)
        return env


async def create_database(name: str) -> str:
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"


async def drop_database(name: str) -> None:
    conn = await asyncpg.connect(PG_ADMIN)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def create_vhost(name: str) -> str:
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", name], check=True, capture_output=True)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", name, "guest", ".*", ".*", ".*"],
        check=True,
        capture_output=True,
    )
    return f"{AMQP_BASE}/{quote(name, safe='')}"


def delete_vhost(name: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", "delete_vhost", name], check=False, capture_output=True)


def claim_redis_db(owner: str) -> int:
    """A Redis database no other test run holds (1-15), claimed in db 0 with an expiry."""
    client = redis.Redis.from_url(f"{REDIS_BASE}/0")
    try:
        for db in range(1, 16):
            if client.set(f"taskrelay-test:db:{db}", owner, nx=True, ex=3 * 3600):
                redis.Redis.from_url(f"{REDIS_BASE}/{db}").flushdb()
                return db
    finally:
        client.close()
    raise RuntimeError("every Redis test database (1-15) is claimed by another run")


def release_redis_db(db: int, owner: str) -> None:
    client = redis.Redis.from_url(f"{REDIS_BASE}/0")
    try:
        redis.Redis.from_url(f"{REDIS_BASE}/{db}").flushdb()
        if client.get(f"taskrelay-test:db:{db}") == owner.encode():
            client.delete(f"taskrelay-test:db:{db}")
    finally:
        client.close()
