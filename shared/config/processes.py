"""The settings of each long-running process: the API (with its gateway), the relay, the worker.

Declared like every setting (`shared.config.reader.setting`): each field names its
environment variable and says what it is for; `shared.config.settings` reads them with the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.config.reader import Floor, setting

DEFAULT_GENERATOR = "shared.domain.content:placeholder_generator"
POSITIVE = Floor.POSITIVE


def _origins(raw: str) -> tuple[str, ...]:
    return tuple(o for o in (part.strip().rstrip("/") for part in raw.split(",")) if o)


def flag(raw: str) -> bool:
    """`true`/`false` (also 1/0, yes/no, on/off): `bool("false")` would be True."""
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"true or false, got {raw!r}")


def _addresses(raw: str) -> str:
    return ",".join(a for a in (part.strip() for part in raw.split(",")) if a)


@dataclass(frozen=True, slots=True)
class ApiSettings:
    """The HTTP API, WebSocket gateway and task page."""

    allowed_origins: tuple[str, ...] = setting(
        (),
        "TASKRELAY_ALLOWED_ORIGINS",
        "Comma-separated Origins allowed to open the WebSocket (`*` for any); once set, list "
        "the page's own origin too. Empty: the Origin's host:port must equal the request's Host.",
        parse=_origins,
        shown="empty",
    )
    max_body_bytes: int = setting(
        1024 * 1024,
        "TASKRELAY_API_MAX_BODY_BYTES",
        "Largest request body; a larger one is answered 413.",
        floor=POSITIVE,
    )
    idempotency_ttl_seconds: int = setting(
        24 * 3600,
        "TASKRELAY_IDEMPOTENCY_TTL_SECONDS",
        "How long a POST's `Idempotency-Key` is honoured; the relay purges older records.",
        floor=POSITIVE,
    )
    rate_limit_per_second: int = setting(
        100,
        "TASKRELAY_API_RATE_LIMIT_PER_SECOND",
        "HTTP requests one client (a token's user, else an address) may make per second on one "
        "API instance; beyond it the answer is 429 with `Retry-After`. 0 turns the limit off.",
    )
    max_open_items_per_user: int = setting(
        20000,
        "TASKRELAY_API_MAX_OPEN_ITEMS_PER_USER",
        "Items still to generate in one user's unfinished tasks; a create or retry that would "
        "pass it is answered 429 with a `detail` saying how many are open.",
        floor=POSITIVE,
    )
    proxy_headers: bool = setting(
        False,
        "TASKRELAY_API_PROXY_HEADERS",
        "`true` to take the client's address and scheme from `X-Forwarded-For` and "
        "`X-Forwarded-Proto`, but only from the proxies in `TASKRELAY_API_FORWARDED_ALLOW_IPS`. "
        "Off: the address is the socket's, whoever sends the headers.",
        parse=flag,
        shown="false",
    )
    forwarded_allow_ips: str = setting(
        "",
        "TASKRELAY_API_FORWARDED_ALLOW_IPS",
        "Comma-separated addresses or networks of the reverse proxies to trust (`*`: any; "
        "empty: none), used only with `TASKRELAY_API_PROXY_HEADERS`.",
        parse=_addresses,
        shown="empty",
    )
    broker_heartbeat_seconds: int = setting(
        10,
        "TASKRELAY_API_BROKER_HEARTBEAT_SECONDS",
        "AMQP heartbeat of the gateway's RabbitMQ link (unless `AMQP_URL` sets one), so a "
        "silently dead link is noticed within seconds.",
        floor=POSITIVE,
    )
    ws_queue_limit: int = setting(
        256,
        "TASKRELAY_WS_QUEUE_LIMIT",
        "Frames one socket may have waiting; past it the socket is closed with 4008 to resync.",
        floor=POSITIVE,
    )
    ws_max_frame_bytes: int = setting(
        4096,
        "TASKRELAY_WS_MAX_FRAME_BYTES",
        "Largest frame a client may send; the server closes with 1009 beyond it.",
        floor=POSITIVE,
    )
    ws_gap_grace_seconds: float = setting(
        2.0,
        "TASKRELAY_WS_GAP_GRACE_SECONDS",
        "How long a missing `seq` may stay missing before the socket gets a fresh snapshot.",
        floor=POSITIVE,
    )
    ws_ping_interval_seconds: float = setting(
        20.0,
        "TASKRELAY_WS_PING_INTERVAL_SECONDS",
        "WebSocket ping period; a peer that does not answer within the same time is dropped.",
        floor=POSITIVE,
    )
    ws_max_sockets_per_user: int = setting(
        32,
        "TASKRELAY_WS_MAX_SOCKETS_PER_USER",
        "Open WebSockets one user may hold on one API instance; the next is closed with 4429.",
        floor=POSITIVE,
    )
    ws_connects_per_second: int = setting(
        10,
        "TASKRELAY_WS_CONNECTS_PER_SECOND",
        "WebSocket connects one user (without a valid token: one address) may make per second "
        "on one API instance; the rest are closed with 4429 before any database or broker work.",
        floor=POSITIVE,
    )


@dataclass(frozen=True, slots=True)
class RelaySettings:
    """The outbox relay (docs/relay.md)."""

    batch_size: int = setting(
        500,
        "TASKRELAY_RELAY_BATCH_SIZE",
        "Rows claimed and published concurrently per batch.",
        floor=POSITIVE,
    )
    poll_interval_seconds: float = setting(
        1.0,
        "TASKRELAY_RELAY_POLL_INTERVAL_SECONDS",
        "Fallback poll when no NOTIFY arrives; a NOTIFY is only a hint.",
    )
    publish_timeout_seconds: float = setting(
        10.0,
        "TASKRELAY_RELAY_PUBLISH_TIMEOUT_SECONDS",
        "Longest wait for one broker confirm; a publish can hang during a reconnect.",
    )
    retention_seconds: float = setting(
        3600.0,
        "TASKRELAY_RELAY_RETENTION_SECONDS",
        "How long published rows stay before cleanup removes them.",
    )
    cleanup_interval_seconds: float = setting(
        60.0,
        "TASKRELAY_RELAY_CLEANUP_INTERVAL_SECONDS",
        "How often the active relay deletes expired rows and idempotency records.",
    )
    cleanup_batch_size: int = setting(
        1000, "TASKRELAY_RELAY_CLEANUP_BATCH_SIZE", "Rows deleted per cleanup transaction."
    )
    max_attempts: int = setting(
        10, "TASKRELAY_RELAY_MAX_ATTEMPTS", "Failed publishes of one row before it is parked."
    )
    backoff_base_seconds: float = setting(
        0.5,
        "TASKRELAY_RELAY_BACKOFF_BASE_SECONDS",
        "First retry delay of a failed row; doubles per attempt, with jitter.",
    )
    backoff_max_seconds: float = setting(
        60.0, "TASKRELAY_RELAY_BACKOFF_MAX_SECONDS", "Longest retry delay of a failed row."
    )
    max_message_bytes: int = setting(
        16 * 1024 * 1024,
        "TASKRELAY_RELAY_MAX_MESSAGE_BYTES",
        "A larger row is parked instead of sent (the broker would close the channel).",
    )
    partitions: int = setting(
        1,
        "TASKRELAY_RELAY_PARTITIONS",
        "Lock partitions the 256 outbox buckets fold into; every relay must use the same value.",
        floor=POSITIVE,
    )
    max_partitions: int = setting(
        0,
        "TASKRELAY_RELAY_MAX_PARTITIONS",
        "Partitions one relay may own at once; 0 means all of them.",
    )
    lag_alert_seconds: float = setting(
        60.0,
        "TASKRELAY_RELAY_LAG_ALERT_SECONDS",
        "`/health` says degraded when the oldest pending row is older than this.",
    )
    broker_heartbeat_seconds: int = setting(
        5,
        "TASKRELAY_RELAY_BROKER_HEARTBEAT_SECONDS",
        "AMQP heartbeat (unless `AMQP_URL` sets one), so a silently dead broker link is "
        "noticed within a few seconds.",
    )
    health_host: str = setting(
        "127.0.0.1",
        "TASKRELAY_RELAY_HEALTH_HOST",
        "Address of `/health` and `/metrics` (port: `--health-port`); 0.0.0.0 lets a scraper "
        "in another container in.",
    )


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """The job consumer and its RQ workers."""

    content_generator: str = setting(
        DEFAULT_GENERATOR,
        "TASKRELAY_CONTENT_GENERATOR",
        "`module:callable` of the content generator (docs/protocol.md §9); `run` and compose "
        "use the demo generator, the placeholder except for the demo's roadmap.",
    )
    item_timeout_seconds: float = setting(
        120.0,
        "TASKRELAY_WORKER_ITEM_TIMEOUT_SECONDS",
        "Longest one generator call may take; past it the item is failed and the job moves on.",
        floor=POSITIVE,
    )
    item_concurrency: int = setting(
        8,
        "TASKRELAY_WORKER_ITEM_CONCURRENCY",
        "Items of one task a job generates at once (coroutine generators on the job's event "
        "loop, plain ones on as many threads); 1 generates one at a time.",
        floor=POSITIVE,
    )
    slice_seconds: float = setting(
        2.0,
        "TASKRELAY_WORKER_SLICE_SECONDS",
        "How long a job works on one task while other tasks wait for a worker; then it hands "
        "the rest back (through the outbox) so the next task in line runs. Nobody waiting: it "
        "goes on.",
        floor=POSITIVE,
    )
    queue_name: str = setting(
        "taskrelay-content",
        "TASKRELAY_WORKER_QUEUE_NAME",
        "The RQ queue job messages become jobs on (`rq info` lists it).",
    )
    prefetch: int = setting(
        16,
        "TASKRELAY_WORKER_PREFETCH",
        "Job messages the consumer may hold unacknowledged at once.",
        floor=POSITIVE,
    )
    lease_seconds: float = setting(
        30.0,
        "TASKRELAY_WORKER_LEASE_SECONDS",
        "How long a job's hold on its task lasts unless renewed (at each item boundary, and "
        "every third of it by a heartbeat thread while one item runs).",
        floor=POSITIVE,
    )
    reconcile_interval_seconds: float = setting(
        5.0,
        "TASKRELAY_WORKER_RECONCILE_INTERVAL_SECONDS",
        "How often each worker's reconciler looks for tasks without live work.",
        floor=POSITIVE,
    )
    stale_after_seconds: float = setting(
        30.0,
        "TASKRELAY_WORKER_STALE_AFTER_SECONDS",
        "How long work may show no sign of life (a job message nobody took, an RQ job started "
        "but holding no lease, a lapsed lease whose job still runs) before the reconciler "
        "recovers it. Counted only while PostgreSQL, Redis and RabbitMQ answer this worker.",
        floor=POSITIVE,
    )
    max_recoveries: int = setting(
        3,
        "TASKRELAY_WORKER_MAX_RECOVERIES",
        "Recoveries in a row without an item done before the reconciler fails the task.",
        floor=POSITIVE,
    )
    outage_patience_seconds: float = setting(
        600.0,
        "TASKRELAY_WORKER_OUTAGE_PATIENCE_SECONDS",
        "How long a job waits (with backoff) for PostgreSQL before it gives up; its generated "
        "result is kept meanwhile, and a job that gives up is recovered like a lost one.",
        floor=POSITIVE,
    )
    job_timeout_seconds: int = setting(
        24 * 3600,
        "TASKRELAY_WORKER_JOB_TIMEOUT_SECONDS",
        "RQ's hard limit on one job; the per-item timeout and the lease normally act first.",
        floor=POSITIVE,
    )
    inbox_retention_seconds: float = setting(
        7 * 24 * 3600.0,
        "TASKRELAY_WORKER_INBOX_RETENTION_SECONDS",
        "How long a job message's `message_id` is remembered for deduplication.",
        floor=POSITIVE,
    )
    shutdown_grace_seconds: float = setting(
        20.0,
        "TASKRELAY_WORKER_SHUTDOWN_GRACE_SECONDS",
        "On SIGTERM, how long running jobs get to reach an item boundary before being killed.",
        floor=POSITIVE,
    )
    metrics_host: str = setting(
        "127.0.0.1",
        "TASKRELAY_WORKER_METRICS_HOST",
        "Address of `/metrics`, `/livez` and `/readyz` (port: `--metrics-port`); 0.0.0.0 lets "
        "a scraper in another container in.",
    )
