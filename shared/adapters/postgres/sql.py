"""The one SQL style of runtime code: plain `$n` statements on an asyncpg connection.

Every query the services run is a SQL string with numbered parameters, executed on the unit of
work's asyncpg connection (the relay runs the same style on its own connection). asyncpg
prepares each statement once per connection and keeps its plan, which the hot path (every API
request, every item result) relies on; SQLAlchemy only describes the schema
(`shared.adapters.postgres.tables`) for Alembic. This module holds what every repository needs to
speak that style: the connection's shape, and the two conversions asyncpg does not do for us.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any, Protocol


class Connection(Protocol):
    """The part of `asyncpg.Connection` the repositories use (asyncpg ships no type hints)."""

    async def execute(self, query: str, *args: Any) -> str:
        """Run a statement; asyncpg's command status, such as `UPDATE 1`."""
        ...

    async def executemany(self, query: str, args: Iterable[Sequence[Any]]) -> None: ...

    async def fetch(self, query: str, *args: Any) -> list[Any]: ...

    async def fetchrow(self, query: str, *args: Any) -> Any: ...

    async def fetchval(self, query: str, *args: Any) -> Any: ...


def affected(status: str) -> int:
    """The row count in asyncpg's command status (`UPDATE 3`, `INSERT 0 1`, `DELETE 0`)."""
    return int(status.rsplit(" ", 1)[-1])


def jsonb(value: Any) -> str | None:
    """A JSONB parameter: the engine's codec takes JSON text; None stays SQL NULL.

    Results come back decoded (the same codec parses them), so only parameters need this.
    """
    return None if value is None else json.dumps(value)
