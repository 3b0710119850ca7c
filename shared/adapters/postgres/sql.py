"""The one SQL style of runtime code: plain `$n` statements on an asyncpg connection.

Every query the processes run is a SQL string with numbered parameters, executed on the unit
of work's asyncpg connection (the relay's claims and marks run on its own session, in the same
style). asyncpg prepares each statement once per connection and keeps its plan, which the hot
path (every API request, every item result, every claim) relies on; SQLAlchemy only describes
the schema (`shared.adapters.postgres.tables`) for Alembic. This module holds what every
repository needs to speak that style: the connection's shape, and the two conversions asyncpg
does not do for us.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, Protocol


class Connection(Protocol):
    """The part of `asyncpg.Connection` the repositories use (asyncpg ships no type hints).

    `timeout` is asyncpg's own timer on one statement (the relay's session bounds each of its
    statements with it): no extra task or timer per call, as `asyncio.timeout` would arm.
    """

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:  # noqa: ASYNC109
        """Run a statement; asyncpg's command status, such as `UPDATE 1`."""
        ...

    async def executemany(self, query: str, args: Iterable[Sequence[Any]]) -> None: ...

    async def fetch(self, query: str, *args: Any, timeout: float | None = None) -> list[Any]: ...  # noqa: ASYNC109

    async def fetchrow(self, query: str, *args: Any, timeout: float | None = None) -> Any: ...  # noqa: ASYNC109

    async def fetchval(self, query: str, *args: Any, timeout: float | None = None) -> Any: ...  # noqa: ASYNC109


def affected(status: str) -> int:
    """The row count in asyncpg's command status (`UPDATE 3`, `INSERT 0 1`, `DELETE 0`)."""
    return int(status.rsplit(" ", 1)[-1])


def jsonb(value: Any) -> str | None:
    """A JSONB parameter: the engine's codec takes JSON text; None stays SQL NULL.

    Results come back decoded (the same codec parses them), so only parameters need this.
    """
    return None if value is None else json.dumps(value)
