"""How every process says that PostgreSQL, RabbitMQ or Redis cannot be reached: which errors of
each driver mean "unreachable", and the one function that builds `DependencyUnavailable`.

`unavailable()` is the one builder: the service, its URL without password, the driver's reason
(scrubbed of the URL it may quote) and the command that starts the service (the one `.ci/run`
uses). `translated(service, url)` is the one translation at an adapter's boundary, as httpx's
`map_httpcore_exceptions`: an error in the block that means the service is unreachable becomes
`DependencyUnavailable`, chained to the cause; any other error passes through.

Each driver has one table here, and each table separates two kinds of caller. While connecting,
probing, or on a connection that runs only fixed statements of its own (the relay's session and
housekeeping), anything the driver raises means the service is not there for this process (a
refused login, a database that does not exist, a broker that closed the handshake):
`any_error=True`. Otherwise only the errors that say the link itself went away count, so an
error of the caller's own request (a statement the server refused, a command Redis refused, a
message the broker returned) stays what it is.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import aiormq
import asyncpg
import redis
from aio_pika.exceptions import CONNECTION_EXCEPTIONS

from shared.config.redaction import redact_url, scrub
from shared.errors import DependencyUnavailable

POSTGRES = "PostgreSQL"
RABBITMQ = "RabbitMQ"
REDIS = "Redis"

START = {
    POSTGRES: "Start it with: pg_ctlcluster --skip-systemctl-redirect "
    "$(ls /etc/postgresql) main start",
    RABBITMQ: "Start it with: rabbitmq-server -detached",
    REDIS: "Start it with: redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 "
    '--save ""',
}

POSTGRES_LINK_LOST = (
    OSError,  # refused, reset, unreachable; TimeoutError (a connect or checkout timeout) too
    asyncpg.InterfaceError,  # "connection is closed"
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08, ConnectionDoesNotExistError
    asyncpg.CannotConnectNowError,  # "the database system is starting up / shutting down"
    asyncpg.AdminShutdownError,  # "terminating connection due to administrator command"
    asyncpg.CrashShutdownError,  # another backend crashed, or an immediate shutdown
    asyncpg.TooManyConnectionsError,  # the server takes no more clients right now
)
"""asyncpg's ways of saying the server, or the link to it, went away."""
POSTGRES_ERRORS = (*POSTGRES_LINK_LOST, asyncpg.PostgresError, asyncpg.InternalClientError)
"""Everything asyncpg raises. `InternalClientError` ("cannot switch to state 12; another
operation is in progress") is a connection whose protocol was left mid-statement, as when the
server shut down under it: unusable, like a closed one."""

AMQP_LINK_LOST = (ConnectionError, aiormq.exceptions.AMQPConnectionError)
"""The connection to the broker went away (or never came): not the message's fault."""
AMQP_ERRORS = (*CONNECTION_EXCEPTIONS, TimeoutError)
"""Everything aio-pika and aiormq raise on a failed connect, declare, bind or a dying link."""

REDIS_LINK_LOST = (redis.ConnectionError, redis.TimeoutError)
"""Redis is down, restarting (`BusyLoadingError` is one), or refused our login."""
REDIS_ERRORS = (OSError, redis.RedisError)


def connection_lost(exc: BaseException | None) -> bool:
    """Whether `exc` means PostgreSQL cannot be reached (an outage), not a refused statement.

    The chain of causes is followed, so an outage re-raised as another error is still one.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, POSTGRES_LINK_LOST):
            return True
        exc = exc.__cause__
    return False


def postgres_unreachable(exc: BaseException, *, any_error: bool = False) -> bool:
    """Whether `exc` means PostgreSQL is not there: with `any_error`, any driver error (see the
    module's docstring), else only `connection_lost` errors."""
    if isinstance(exc, DependencyUnavailable):
        return False  # translated already
    return connection_lost(exc) or (any_error and isinstance(exc, POSTGRES_ERRORS))


def rabbitmq_unreachable(exc: BaseException, *, any_error: bool = False) -> bool:
    """Whether `exc` means RabbitMQ is not there (see the module's docstring)."""
    return isinstance(exc, AMQP_ERRORS if any_error else AMQP_LINK_LOST)


def redis_unreachable(exc: BaseException, *, any_error: bool = False) -> bool:
    """Whether `exc` means Redis is not there (see the module's docstring)."""
    return isinstance(exc, REDIS_ERRORS if any_error else REDIS_LINK_LOST)


UNREACHABLE: dict[str, Callable[..., bool]] = {
    POSTGRES: postgres_unreachable,
    RABBITMQ: rabbitmq_unreachable,
    REDIS: redis_unreachable,
}


def redact(url: str) -> str:
    """The URL with its password (userinfo or `?password=`) replaced by ***, for messages."""
    return redact_url(url)


def unavailable(
    service: str, url: str, cause: BaseException | str, what: str = "", hint: str = ""
) -> DependencyUnavailable:
    """The error a process raises (and prints in one line) when `service` at `url` does not
    answer: the one place a `DependencyUnavailable` is made. `cause` is the driver's error (its
    first line is the reason) or the reason itself; `what` names the step that failed (a relay's
    "claim", say) before it; `hint` replaces the command that starts the service."""
    if isinstance(cause, str):
        reason = cause
    else:
        text = str(cause)
        reason = text.splitlines()[0] if text else type(cause).__name__
    reason = scrub(f"{what}: {reason}" if what else reason, url)  # a driver may quote the URL
    return DependencyUnavailable(service, redact(url), reason, hint or START.get(service, ""))


@contextmanager
def translated(
    service: str, url: str, what: str = "", *, any_error: bool = False
) -> Iterator[None]:
    """Raise DependencyUnavailable for an error in the block that means `service` at `url` is
    unreachable; `what` names the step (shown before the driver's reason). Others pass through.

    A plain `with` works around awaits too: `with translated(REDIS, url): await client.ping()`.
    """
    try:
        yield
    except Exception as exc:
        if not UNREACHABLE[service](exc, any_error=any_error):
            raise
        raise unavailable(service, url, exc, what) from exc
