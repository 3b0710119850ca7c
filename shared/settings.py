"""Typed settings, read once from the environment by each process's composition root.

One frozen dataclass per concern; every field says what it is for. Nothing here does I/O:
the URLs are only parsed, never dialled.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from shared.errors import ConfigurationError
from shared.redaction import redact_url

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/taskrelay"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_GENERATOR = "shared.content:placeholder_generator"
MIN_SECRET_CHARS = 32
"""An HS256 key shorter than this can be guessed offline from one token (CONTRACT §3)."""


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    """PostgreSQL: where the tasks, their items and the outbox live."""

    url: str = DEFAULT_DATABASE_URL
    """`postgresql://` or `postgresql+asyncpg://`; both are accepted."""
    pool_size: int = 10
    """Connections each process keeps open."""

    @property
    def sqlalchemy_url(self) -> str:
        """The URL with the asyncpg driver, as SQLAlchemy wants it."""
        return "postgresql+asyncpg://" + self.url.split("://", 1)[1]

    @property
    def asyncpg_dsn(self) -> str:
        """The URL without a driver suffix, as asyncpg wants it."""
        return "postgresql://" + self.url.split("://", 1)[1]


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """RabbitMQ: where the relay publishes and the worker and gateway consume."""

    url: str = DEFAULT_AMQP_URL
    exchange: str = "taskrelay"
    """The durable topic exchange outside consumers bind to (CONTRACT §11)."""


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """Redis: the RQ job queues."""

    url: str = DEFAULT_REDIS_URL


@dataclass(frozen=True, slots=True)
class AuthSettings:
    """Bearer tokens: HS256 signed with the shared secret."""

    secret: str | None = None
    """`TASKRELAY_SECRET`; required by every process that issues or checks tokens."""
    default_ttl_seconds: int = 24 * 3600

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
class ApiSettings:
    """The HTTP API, WebSocket gateway and task page."""

    allowed_origins: tuple[str, ...] = ()
    """Origins allowed to open the WebSocket; empty means "same host:port as the request"."""
    max_body_bytes: int = 1024 * 1024
    idempotency_ttl_seconds: int = 24 * 3600
    ws_queue_limit: int = 256
    """Frames one socket may have waiting; past it the socket is closed with 4008 to resync."""
    ws_max_frame_bytes: int = 4096
    """Largest frame a client may send; the server closes with 1009 beyond it."""
    ws_gap_grace_seconds: float = 2.0
    """How long a missing `seq` may stay missing before the socket gets a fresh snapshot."""
    ws_ping_interval_seconds: float = 20.0
    """WebSocket ping period; a peer that does not answer within the same time is dropped."""
    ws_max_sockets_per_user: int = 32
    """Open WebSockets one user may hold on one API instance; the next is closed with 4429."""
    rate_limit_per_second: int = 100
    """HTTP requests one client (a token's user, else an address) may make per second on one
    API instance; beyond it the answer is 429 with `Retry-After`. 0 turns the limit off."""


@dataclass(frozen=True, slots=True)
class RelaySettings:
    """The outbox relay (docs/relay.md); each field can be set with `TASKRELAY_RELAY_<NAME>`."""

    batch_size: int = 500
    """Rows claimed and published concurrently per batch."""
    poll_interval_seconds: float = 1.0
    """Fallback poll when no NOTIFY arrives; a NOTIFY is only a hint."""
    publish_timeout_seconds: float = 10.0
    """Longest wait for one broker confirm; a publish can hang during a reconnect."""
    retention_seconds: float = 3600.0
    """How long published rows stay before cleanup removes them."""
    cleanup_interval_seconds: float = 60.0
    """How often the active relay deletes expired rows, in batches of `cleanup_batch_size`."""
    cleanup_batch_size: int = 1000
    max_attempts: int = 10
    """Failed publishes of one row before it is parked."""
    backoff_base_seconds: float = 0.5
    """First retry delay of a failed row; doubles per attempt, with jitter."""
    backoff_max_seconds: float = 60.0
    max_message_bytes: int = 16 * 1024 * 1024
    """A larger row is parked instead of sent (the broker would close the channel)."""
    partitions: int = 1
    """Lock partitions the 256 outbox buckets fold into; every relay must use the same value."""
    max_partitions: int = 0
    """Partitions one relay may own at once; 0 means all of them."""
    lag_alert_seconds: float = 60.0
    """`/health` says degraded when the oldest pending row is older than this."""
    broker_heartbeat_seconds: int = 5
    health_host: str = "127.0.0.1"
    """Address of `/health` and `/metrics`; 0.0.0.0 lets a scraper in another container in."""
    """AMQP heartbeat, so a silently dead broker link is noticed within a few seconds."""


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """The job consumer and its RQ workers."""

    content_generator: str = DEFAULT_GENERATOR
    """`module:callable` of the content generator (CONTRACT §9)."""
    item_timeout_seconds: float = 120.0
    """Longest one generator call may take; past it the item is failed and the job moves on."""
    queue_name: str = "taskrelay-content"
    """The RQ queue job messages become jobs on (`rq info` lists it)."""
    prefetch: int = 16
    """Job messages the consumer may hold unacknowledged at once."""
    lease_seconds: float = 30.0
    """How long a job's hold on its task lasts unless renewed (at each item boundary, and every
    third of it by a heartbeat thread while one item runs)."""
    reconcile_interval_seconds: float = 5.0
    """How often each worker's reconciler looks for tasks without live work."""
    stale_after_seconds: float = 30.0
    """How long work may show no sign of life (a job message nobody took, an RQ job started but
    holding no lease, a lapsed lease whose job still runs) before the reconciler recovers it.
    Counted only while PostgreSQL, Redis and RabbitMQ answer this worker."""
    max_recoveries: int = 3
    """Recoveries in a row without an item done before the reconciler fails the task."""
    outage_patience_seconds: float = 600.0
    """How long a job waits (with backoff) for PostgreSQL before it gives up; its generated
    result is kept meanwhile, and a job that gives up is recovered like a lost one."""
    job_timeout_seconds: int = 24 * 3600
    """RQ's hard limit on one job; the per-item timeout and the lease normally act first."""
    inbox_retention_seconds: float = 7 * 24 * 3600.0
    """How long a job message's `message_id` is remembered for deduplication."""
    shutdown_grace_seconds: float = 20.0
    """On SIGTERM, how long running jobs get to reach an item boundary before being killed."""
    metrics_host: str = "127.0.0.1"
    """Address of `/metrics`, `/livez` and `/readyz` (port: `--metrics-port`); 0.0.0.0 lets a
    scraper in another container in."""


@dataclass(frozen=True, slots=True)
class Settings:
    """All settings of one process."""

    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    broker: BrokerSettings = field(default_factory=BrokerSettings)
    redis: RedisSettings = field(default_factory=RedisSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    relay: RelaySettings = field(default_factory=RelaySettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the environment once; raise ConfigurationError on a malformed value."""
        env = os.environ if env is None else env
        db_url = env.get("DATABASE_URL", DEFAULT_DATABASE_URL)
        if not db_url.startswith(("postgresql://", "postgresql+asyncpg://", "postgres://")):
            shown = redact_url(db_url)
            raise ConfigurationError(f"DATABASE_URL must start with postgresql://, got {shown!r}")
        origins = tuple(
            o.strip().rstrip("/") for o in env.get("TASKRELAY_ALLOWED_ORIGINS", "").split(",")
        )
        return cls(
            database=DatabaseSettings(url=db_url),
            broker=BrokerSettings(url=env.get("AMQP_URL", DEFAULT_AMQP_URL)),
            redis=RedisSettings(url=env.get("REDIS_URL", DEFAULT_REDIS_URL)),
            auth=AuthSettings(secret=env.get("TASKRELAY_SECRET") or None),
            api=_api_settings(env, tuple(o for o in origins if o)),
            relay=_relay_settings(env),
            worker=_worker_settings(env),
        )


def _api_settings(env: Mapping[str, str], origins: tuple[str, ...]) -> ApiSettings:
    """The gateway's limits are overridable as `TASKRELAY_WS_<NAME>` (e.g. `_QUEUE_LIMIT`), the
    rate limit as `TASKRELAY_API_RATE_LIMIT_PER_SECOND` (0: off)."""
    names = (
        "ws_queue_limit",
        "ws_max_frame_bytes",
        "ws_gap_grace_seconds",
        "ws_max_sockets_per_user",
    )
    values = _overrides(env, ApiSettings(), "TASKRELAY_", names, allow_zero=False)
    rate = ("rate_limit_per_second",)
    values |= _overrides(env, ApiSettings(), "TASKRELAY_API_", rate, allow_zero=True)
    return ApiSettings(allowed_origins=origins, **values)


def _relay_settings(env: Mapping[str, str]) -> RelaySettings:
    """Every `RelaySettings` field, overridable as `TASKRELAY_RELAY_<FIELD NAME IN CAPITALS>`."""
    names = tuple(RelaySettings.__dataclass_fields__)
    relay = RelaySettings(
        **_overrides(env, RelaySettings(), "TASKRELAY_RELAY_", names, allow_zero=True)
    )
    if relay.partitions < 1 or relay.batch_size < 1:
        raise ConfigurationError("TASKRELAY_RELAY_PARTITIONS and _BATCH_SIZE must be at least 1")
    return relay


def _worker_settings(env: Mapping[str, str]) -> WorkerSettings:
    """Every `WorkerSettings` field, overridable as `TASKRELAY_WORKER_<FIELD NAME IN CAPITALS>`;
    the generator is `TASKRELAY_CONTENT_GENERATOR` (CONTRACT §3)."""
    names = tuple(n for n in WorkerSettings.__dataclass_fields__ if n != "content_generator")
    values = _overrides(env, WorkerSettings(), "TASKRELAY_WORKER_", names, allow_zero=False)
    generator = env.get("TASKRELAY_CONTENT_GENERATOR") or DEFAULT_GENERATOR
    return WorkerSettings(content_generator=generator, **values)


def _overrides(
    env: Mapping[str, str],
    defaults: object,
    prefix: str,
    names: tuple[str, ...],
    *,
    allow_zero: bool,
) -> dict[str, Any]:
    """`{name: value}` for each `<prefix><NAME>` set in `env`, typed like the default's field."""
    values: dict[str, Any] = {}
    for name in names:
        variable = f"{prefix}{name.upper()}"
        raw = env.get(variable)
        if not raw:
            continue
        kind = type(getattr(defaults, name))
        try:
            value = kind(raw)
        except ValueError:
            raise ConfigurationError(f"{variable} must be a {kind.__name__}, got {raw!r}") from None
        if isinstance(value, int | float) and (value < 0 or (value == 0 and not allow_zero)):
            bound = "zero or more" if allow_zero else "positive"
            raise ConfigurationError(f"{variable} must be {bound}, got {raw!r}")
        values[name] = value
    return values
