"""Which RabbitMQ (aio-pika, aiormq) and Redis (redis-py) errors mean "unreachable", and the
one translation of every driver's errors into `DependencyUnavailable`.

Each driver has one table here, PostgreSQL's in `shared.adapters.postgres.outages` beside the
database code. Like PostgreSQL's, each separates two kinds of caller: `any_error=True` for a connect
or a probe, where anything the driver raises means the service is not there for this process (a
refused login, a broker that closed the handshake); otherwise only the errors that say the
link itself went away, so an error of the caller's own request (a command Redis refused, a
message the broker returned) stays what it is.

Every adapter translates through `translated(service, url)`: the driver's exception becomes
`DependencyUnavailable` naming the service and its URL without password, chained to the cause.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import aiormq
import redis
from aio_pika.exceptions import CONNECTION_EXCEPTIONS

from shared.adapters.dependencies import POSTGRES, RABBITMQ, REDIS, unavailable
from shared.adapters.postgres.outages import postgres_unavailable, postgres_unreachable
from shared.errors import DependencyUnavailable

AMQP_LINK_LOST = (ConnectionError, aiormq.exceptions.AMQPConnectionError)
"""The connection to the broker went away (or never came): not the message's fault."""
AMQP_ERRORS = (*CONNECTION_EXCEPTIONS, TimeoutError)
"""Everything aio-pika and aiormq raise on a failed connect, declare, bind or a dying link."""

REDIS_LINK_LOST = (redis.ConnectionError, redis.TimeoutError)
"""Redis is down, restarting (`BusyLoadingError` is one), or refused our login."""
REDIS_ERRORS = (OSError, redis.RedisError)


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
        raise unavailable_error(service, url, exc, what) from exc


def unavailable_error(
    service: str, url: str, exc: BaseException, what: str = ""
) -> DependencyUnavailable:
    """`exc`, which means `service` is unreachable, as the DependencyUnavailable it becomes."""
    if service == POSTGRES:
        return postgres_unavailable(url, exc, what)
    reason = str(exc) or type(exc).__name__
    return unavailable(service, url, f"{what}: {reason}" if what else reason)
