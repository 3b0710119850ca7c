"""Which PostgreSQL driver errors mean "PostgreSQL cannot be reached", and their translation.

The one place that tells an outage (refused, starting up, shutting down, link dropped, pool or
connect timeout) from a statement the server refused. Every adapter that talks to PostgreSQL
(the unit of work, the relay's session, the probes, `migrate`) asks here, and reports an outage
as `DependencyUnavailable` through `postgres_unavailable`; a refused statement stays what it is.

Two kinds of caller differ. While connecting, or on a connection that runs only fixed statements
of its own (the relay's session, its housekeeping, a probe), any error the driver or the server
raises (a login turned down, a database that does not exist) means PostgreSQL is not there for
this process: `any_error=True`. A unit of work running a request's statements counts only
`connection_lost` errors as an outage; anything else is the statement's own.
"""

from __future__ import annotations

import asyncpg
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from shared.adapters.dependencies import POSTGRES, unavailable
from shared.errors import DependencyUnavailable

CONNECTION_LOST = (
    OSError,  # refused, reset, unreachable; TimeoutError (a connect timeout) is one too
    asyncpg.InterfaceError,  # "connection is closed"
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08, ConnectionDoesNotExistError
    asyncpg.CannotConnectNowError,  # "the database system is starting up / shutting down"
    asyncpg.AdminShutdownError,  # "terminating connection due to administrator command"
    asyncpg.CrashShutdownError,  # another backend crashed, or an immediate shutdown
    asyncpg.TooManyConnectionsError,  # the server takes no more clients right now
    DisconnectionError,  # the pool's ping of an idle connection failed
    PoolTimeout,  # no pooled connection came free in time
)
"""The driver's and the pool's ways of saying the server, or the link to it, went away."""

DRIVER_ERRORS = (*CONNECTION_LOST, asyncpg.PostgresError, asyncpg.InternalClientError, DBAPIError)
"""Everything the driver, or SQLAlchemy around it, raises. `InternalClientError` ("cannot
switch to state 12; another operation is in progress") is a connection whose protocol was left
mid-statement, as when the server shut down under it: unusable, like a closed one."""


def connection_lost(exc: BaseException | None) -> bool:
    """Whether `exc` means PostgreSQL cannot be reached (an outage), not a refused statement.

    SQLAlchemy wraps the driver's error (`orig`, whose cause is asyncpg's): the chain of
    causes is followed, so a wrapped outage is recognised as one.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, CONNECTION_LOST):
            return True
        if isinstance(exc, DBAPIError):
            if exc.connection_invalidated:
                return True
            exc = exc.orig
        else:
            exc = exc.__cause__
    return False


def postgres_unreachable(exc: BaseException, *, any_error: bool = False) -> bool:
    """Whether `exc` means PostgreSQL is not there: with `any_error`, any driver error (see the
    module's docstring), else only `connection_lost` errors."""
    if isinstance(exc, DependencyUnavailable):
        return False  # translated already
    return connection_lost(exc) or (any_error and isinstance(exc, DRIVER_ERRORS))


def postgres_unavailable(url: str, exc: BaseException, what: str = "") -> DependencyUnavailable:
    """The DependencyUnavailable an unreachable PostgreSQL is reported as; `what` names the
    step that failed (a relay's "claim", say), the URL is shown without its password."""
    text = str(exc)  # SQLAlchemy's text goes on with the statement: its first line says it
    reason = text.splitlines()[0] if text else type(exc).__name__
    return unavailable(POSTGRES, url, f"{what}: {reason}" if what else reason)
