"""What counts as "PostgreSQL went away" (a 503) and what is a refused statement (not one), and
the one translation of each driver's outages into DependencyUnavailable.

The errors are the drivers' own classes, built as they raise them; the e2e outage tests meet
the same ones from a really stopped server. (SQLAlchemy runs no runtime statement any more:
what it wrapped or flagged as invalidated is asyncpg's own error, or a connection asyncpg has
seen close.)
"""

from __future__ import annotations

import asyncio

import aiormq
import asyncpg
import pytest
import redis

from shared.adapters.postgres.uow import _lost_on
from shared.adapters.unavailable import (
    POSTGRES,
    RABBITMQ,
    REDIS,
    connection_lost,
    postgres_unreachable,
    translated,
    unavailable,
)
from shared.errors import DependencyUnavailable, NotFound


def wrapped(cause: BaseException) -> Exception:
    """As code between the driver and the caller re-raises it: another error, caused by the
    driver's (`raise ... from exc`), two levels down."""
    adapted = Exception(str(cause))
    adapted.__cause__ = cause
    outer = RuntimeError(f"while running a statement: {cause}")
    outer.__cause__ = adapted
    return outer


OUTAGES = [
    ConnectionRefusedError(111, "Connect call failed"),
    ConnectionResetError(104, "Connection reset by peer"),
    TimeoutError(),
    asyncpg.CannotConnectNowError("the database system is starting up"),
    asyncpg.CannotConnectNowError("the database system is shutting down"),
    asyncpg.AdminShutdownError("terminating connection due to administrator command"),
    asyncpg.CrashShutdownError("terminating connection because of crash of another process"),
    asyncpg.ConnectionDoesNotExistError("connection was closed in the middle of operation"),
    asyncpg.TooManyConnectionsError("sorry, too many clients already"),
    asyncpg.InterfaceError("connection is closed"),
    TimeoutError("no pooled connection came free in time"),  # the unit of work's pool wait
    wrapped(ConnectionRefusedError(111, "Connect call failed")),
    wrapped(asyncpg.CannotConnectNowError("the database system is starting up")),
]

NOT_OUTAGES = [
    None,
    asyncpg.UniqueViolationError("duplicate key value violates unique constraint"),
    asyncpg.QueryCanceledError("canceling statement due to statement timeout"),
    wrapped(asyncpg.UniqueViolationError("duplicate key")),
    NotFound("task not found"),
    unavailable(POSTGRES, "postgresql://db", "already translated"),
    ValueError("a bug"),
    asyncio.CancelledError(),
]


@pytest.mark.parametrize("exc", OUTAGES, ids=lambda e: type(e).__name__)
def test_an_outage_is_recognised(exc: BaseException) -> None:
    assert connection_lost(exc)


@pytest.mark.parametrize("exc", NOT_OUTAGES, ids=lambda e: type(e).__name__)
def test_a_refused_statement_is_not_an_outage(exc: BaseException | None) -> None:
    assert not connection_lost(exc)


class _Connection:
    """As much of an asyncpg connection as `_lost_on` asks: whether it has closed."""

    def __init__(self, closed: bool) -> None:
        self._closed = closed

    def is_closed(self) -> bool:
        return self._closed


def test_an_error_on_a_connection_that_has_since_closed_is_an_outage() -> None:
    """What SQLAlchemy flagged as an invalidated connection: the unit of work asks asyncpg
    whether the connection closed under the error, whatever the error says."""
    exc = wrapped(ValueError("whatever the driver said"))
    assert _lost_on(_Connection(closed=True), exc)
    assert not _lost_on(_Connection(closed=False), exc)


def test_while_connecting_any_driver_error_means_postgres_is_not_there() -> None:
    refused_login = asyncpg.InvalidPasswordError("password authentication failed")
    assert postgres_unreachable(refused_login, any_error=True)
    assert not postgres_unreachable(refused_login)
    assert not postgres_unreachable(ValueError("a bug"), any_error=True)


def test_a_connection_left_mid_statement_is_dropped_by_a_session() -> None:
    """The relay's session met this when PostgreSQL shut down under a statement: its next
    statement found the protocol mid-way. It must reconnect, not crash the relay."""
    stuck = asyncpg.InternalClientError(
        "cannot switch to state 12; another operation (2) is in progress"
    )
    assert postgres_unreachable(stuck, any_error=True)


@pytest.mark.parametrize(
    ("service", "outage", "own_error"),
    [
        (POSTGRES, ConnectionRefusedError(111, "refused"), asyncpg.UniqueViolationError("dup")),
        (
            RABBITMQ,
            aiormq.exceptions.AMQPConnectionError("gone"),
            aiormq.exceptions.DeliveryError(None, None),
        ),
        (REDIS, redis.ConnectionError("Connection refused"), redis.ResponseError("WRONGTYPE")),
    ],
)
def test_one_translation_per_driver(
    service: str, outage: BaseException, own_error: BaseException
) -> None:
    url = "scheme://user:Secret9@host:1/x"
    with pytest.raises(DependencyUnavailable) as translated_error, translated(service, url, "step"):
        raise outage
    assert translated_error.value.service == service
    assert translated_error.value.__cause__ is outage
    assert "Secret9" not in str(translated_error.value)
    assert "step: " in translated_error.value.reason
    # A refused statement, command or message is the caller's, not an outage.
    with pytest.raises(type(own_error)), translated(service, url):
        raise own_error
