"""Typed settings, read once from the environment by each process's composition root.

One frozen dataclass per concern (those of the API, relay and worker processes in
`shared.config.processes`). Every field is declared with `setting(default, variable,
doc)` (`shared.config.reader`): the environment variable that sets it and what it is for, so
one reader covers them all and docs/configuration.md is checked against the same table. Nothing
here does I/O: the URLs are only parsed, never dialled.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from shared.config.model import ModelSettings
from shared.config.processes import DEFAULT_GENERATOR, ApiSettings, RelaySettings, WorkerSettings
from shared.config.reader import Floor, read_section, setting
from shared.config.redaction import redact_url
from shared.errors import ConfigurationError

__all__ = [
    "DEFAULT_GENERATOR",
    "ApiSettings",
    "AuthSettings",
    "BrokerSettings",
    "DatabaseSettings",
    "LoggingSettings",
    "ModelSettings",
    "RedisSettings",
    "RelaySettings",
    "Settings",
    "WorkerSettings",
]

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/taskrelay"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
MIN_SECRET_CHARS = 32
"""An HS256 key shorter than this can be guessed offline from one token (docs/protocol.md §3)."""
MAINTENANCE_DATABASE = "postgres"
"""The database every PostgreSQL server has: where `CREATE DATABASE` is issued from."""
POSITIVE = Floor.POSITIVE


def _database_url(raw: str) -> str:
    if not raw.startswith(("postgresql://", "postgresql+asyncpg://", "postgres://")):
        raise ValueError(f"a postgresql:// URL, got {redact_url(raw)!r}")
    return raw


def _log_format(raw: str) -> str:
    if raw.lower() not in ("auto", "json", "console"):
        raise ValueError(f"auto, json or console, got {raw!r}")
    return raw.lower()


def _log_level(raw: str) -> str:
    if not isinstance(logging.getLevelName(raw.upper()), int):
        raise ValueError(f"a level such as DEBUG, INFO or WARNING, got {raw!r}")
    return raw.upper()


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    """PostgreSQL: where the tasks, their items and the outbox live."""

    url: str = setting(
        DEFAULT_DATABASE_URL,
        "DATABASE_URL",
        "PostgreSQL; `postgresql://` or `postgresql+asyncpg://`, both are accepted.",
        parse=_database_url,
    )
    pool_size: int = setting(
        10,
        "TASKRELAY_DATABASE_POOL_SIZE",
        "Sizes the API's connection pool: up to twice this many, opened as needed, "
        "each closed after 5 idle minutes.",
        floor=POSITIVE,
    )

    @property
    def migrations_url(self) -> str:
        """The URL with the asyncpg driver, as Alembic's engine wants it (`taskrelay migrate`)."""
        return "postgresql+asyncpg://" + self.url.split("://", 1)[1]

    @property
    def asyncpg_dsn(self) -> str:
        """The URL without a driver suffix, as asyncpg wants it."""
        return "postgresql://" + self.url.split("://", 1)[1]

    @property
    def database_name(self) -> str:
        return urlsplit(self.asyncpg_dsn).path.lstrip("/") or MAINTENANCE_DATABASE

    @property
    def admin_dsn(self) -> str:
        """The same server and login, on the maintenance database: it answers even before
        `taskrelay migrate` has created the configured one."""
        parts = urlsplit(self.asyncpg_dsn)
        return urlunsplit(parts._replace(path=f"/{MAINTENANCE_DATABASE}"))


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """RabbitMQ: where the relay publishes and the worker and gateway consume. The exchange is
    `taskrelay`, fixed by docs/protocol.md §11 (`shared.domain.messages.EXCHANGE`)."""

    url: str = setting(
        DEFAULT_AMQP_URL, "AMQP_URL", "RabbitMQ; its virtual host separates deployments."
    )


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """Redis: the RQ job queues."""

    url: str = setting(DEFAULT_REDIS_URL, "REDIS_URL", "Redis, for RQ's queues.")


@dataclass(frozen=True, slots=True)
class LoggingSettings:
    """Log lines of every process (`shared.observability.logging`)."""

    format: str = setting(
        "auto",
        "TASKRELAY_LOG_FORMAT",
        "`json`, `console`, or `auto`: JSON unless stderr is a terminal.",
        parse=_log_format,
    )
    level: str = setting(
        "INFO",
        "TASKRELAY_LOG_LEVEL",
        "Applies to every logger, libraries' too.",
        parse=_log_level,
    )


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """Bearer tokens: HS256 signed with the shared secret."""

    secret: str | None = setting(
        None,
        "TASKRELAY_SECRET",
        "HS256 token secret, at least 32 characters; required by every process that issues or "
        "checks tokens, except that `run` and `demo` generate one per run.",
        parse=str,
        shown="none",
    )
    default_ttl_seconds: int = setting(
        24 * 3600,
        "TASKRELAY_TOKEN_TTL_SECONDS",
        "Lifetime of a token from `taskrelay token` without `--ttl`.",
        floor=POSITIVE,
    )

    def require_secret(self) -> str:
        if not self.secret:
            raise ConfigurationError("TASKRELAY_SECRET is not set: export a long random string")
        return self.checked_secret() or self.secret

    def checked_secret(self) -> str | None:
        """The secret if set, None if unset; ConfigurationError when it is too short to use."""
        if self.secret is not None and len(self.secret) < MIN_SECRET_CHARS:
            raise ConfigurationError(
                f"TASKRELAY_SECRET is {len(self.secret)} characters: it must be at least "
                f"{MIN_SECRET_CHARS}; make one with: openssl rand -hex 32"
            )
        return self.secret


@dataclass(frozen=True, slots=True)
class Settings:
    """All settings of one process."""

    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    broker: BrokerSettings = field(default_factory=BrokerSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    relay: RelaySettings = field(default_factory=RelaySettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    model: ModelSettings = field(default_factory=ModelSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the environment once; raise ConfigurationError on a malformed value."""
        env = os.environ if env is None else env
        return cls(
            database=read_section(DatabaseSettings, env),
            broker=read_section(BrokerSettings, env),
            redis=read_section(RedisSettings, env),
            logging=read_section(LoggingSettings, env),
            auth=read_section(AuthSettings, env),
            api=read_section(ApiSettings, env),
            relay=read_section(RelaySettings, env),
            worker=read_section(WorkerSettings, env),
            model=read_section(ModelSettings, env),
        )
