"""The outbox's delivery side: the relay's claim and marks, its backlog figures and cleanup,
and the parked rows an operator puts back in line.

The claim keeps a task's rows in id order, which is their commit order (every writer holds the
task's row lock): a row waiting for a retry hides every later row of the same task, so a retry
never lets a later row overtake it. Parked rows block nothing. A relay that owns some of the
partitions claims with the list of their buckets written into the statement (`claim_owned`):
the planner has statistics for `partition_key = ANY(...)` (not for an expression on it), so it
walks the unpublished index in id order and stops at the limit, and the plan it caches is made
for that list. One that owns them all (a single relay, the default) claims with no partition
filter: sending and checking 256 buckets was a tenth of its CPU per row.
Marks only touch rows still unpublished, so a duplicate publication by a relay that just lost
leadership changes nothing.

`OutboxDelivery` runs on whichever asyncpg connection it is given: the claim and the marks on
the relay's dedicated session (`services.relay.session`), so that a statement that succeeds
proves the session's leadership locks are still held; the figures, the cleanup and the parked
rows in a unit of work (`UnitOfWork.outbox_delivery`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from uuid import UUID

from shared.adapters.postgres.outbox.writer import OUTBOX_CHANNEL
from shared.adapters.postgres.sql import Connection, affected

ROW_COLUMNS = """o.id, o.message_id, o.task_id, o.kind, o.routing_key, o.payload::text AS payload,
       (o.payload->>'seq')::bigint AS seq, o.headers->>'traceparent' AS traceparent, o.attempts,
       extract(epoch FROM o.created_at)::float8 AS committed_at"""
"""What the relay reads of a row (`OutboxRow`), from `outbox o`."""
_CLAIM = f"""
SELECT {ROW_COLUMNS}
FROM outbox o
WHERE o.published_at IS NULL AND o.parked_at IS NULL{{partitions}}
  AND NOT (o.task_id = ANY($2::uuid[]))
  AND NOT EXISTS (
      SELECT 1 FROM outbox d
      WHERE d.task_id = o.task_id AND d.id <= o.id
        AND d.published_at IS NULL AND d.parked_at IS NULL
        AND d.next_attempt_at IS NOT NULL AND d.next_attempt_at > now())
ORDER BY o.id
LIMIT $1
"""
CLAIM_ALL = _CLAIM.format(partitions="")
"""$1 limit, $2 task ids to skip: the claim of a relay that owns every partition."""


def claim_owned(buckets: Sequence[int]) -> str:
    """CLAIM_ALL for the rows of these buckets only. The list is part of the statement, not a
    parameter: the session's cached plan for a parameter ran a 500-row claim over 128 buckets
    in 3.4 ms, against 0.8 ms for a plan made for the list."""
    listed = ",".join(str(int(bucket)) for bucket in buckets)
    return _CLAIM.format(partitions=f"\n  AND o.partition_key = ANY('{{{listed}}}'::smallint[])")


@lru_cache(maxsize=64)
def _claim(buckets: frozenset[int] | None) -> str:
    """The claim for these buckets (None: every one), made once per set (it rarely changes)."""
    return CLAIM_ALL if buckets is None else claim_owned(sorted(buckets))


_MARK_PUBLISHED = """
UPDATE outbox SET published_at = clock_timestamp()
WHERE id = ANY($1::bigint[]) AND published_at IS NULL
RETURNING id
"""
_MARK_FAILED = """
UPDATE outbox o
SET attempts = o.attempts + 1,
    last_error = f.error,
    next_attempt_at = CASE WHEN f.delay IS NULL THEN o.next_attempt_at
                           ELSE clock_timestamp() + make_interval(secs => f.delay) END,
    parked_at = CASE WHEN f.delay IS NULL THEN clock_timestamp() END
FROM unnest($1::bigint[], $2::text[], $3::float8[]) AS f(id, error, delay)
WHERE o.id = f.id AND o.published_at IS NULL
"""
MAX_ERROR_CHARS = 2000
"""A failed row keeps at most this much of its error (`last_error`)."""

_PARKED = """
SELECT id, task_id, kind, message_id, attempts, last_error,
       extract(epoch FROM clock_timestamp() - parked_at)::float8 AS parked_seconds
FROM outbox WHERE parked_at IS NOT NULL AND published_at IS NULL
ORDER BY id LIMIT $1
"""
"""The parked rows, oldest first (`outbox_parked_idx`): what `taskrelay admin outbox` lists."""
_PARKED_OF_TASKS = """
SELECT id, task_id FROM outbox
WHERE parked_at IS NOT NULL AND published_at IS NULL
  AND task_id IN (SELECT task_id FROM outbox WHERE id = ANY($1::bigint[]))
ORDER BY id
FOR UPDATE
"""
_REPLAY_PARKED = """
UPDATE outbox SET parked_at = NULL, attempts = 0, next_attempt_at = NULL
WHERE id = ANY($1::bigint[]) AND parked_at IS NOT NULL AND published_at IS NULL
RETURNING id, task_id
"""
"""The parking of `_MARK_FAILED` undone: the rows are due again, claimed in id order like any
other (`last_error` is kept until the next attempt, for the record)."""
_NOTIFY = "SELECT pg_notify($1, '')"

EXACT_BACKLOG_LIMIT = 10_000
"""Up to this many pending rows the backlog is counted exactly; beyond, it is estimated."""
_STATS = f"""
SELECT
  (SELECT count(*) FROM (SELECT 1 FROM outbox WHERE published_at IS NULL AND parked_at IS NULL
     LIMIT {EXACT_BACKLOG_LIMIT + 1}) AS capped) AS counted,
  (SELECT id FROM outbox WHERE published_at IS NULL AND parked_at IS NULL
     ORDER BY id LIMIT 1) AS first_id,
  (SELECT max(id) FROM outbox) AS last_id,
  (SELECT extract(epoch FROM clock_timestamp() - created_at)::float8 FROM outbox
     WHERE published_at IS NULL AND parked_at IS NULL ORDER BY id LIMIT 1) AS oldest_age,
  (SELECT count(*) FROM outbox WHERE parked_at IS NOT NULL) AS parked
"""
"""An exact count of a large backlog reads every pending row (0.5 s a second at 1M rows, on
the machine that is draining it); past EXACT_BACKLOG_LIMIT the id span of the pending rows
stands in for it (ids are dense, so it errs only by rolled-back ids and rows already done)."""
_DELETE_PUBLISHED = """
DELETE FROM outbox WHERE id IN (
  SELECT id FROM outbox
  WHERE published_at IS NOT NULL
    AND published_at < clock_timestamp() - make_interval(secs => $1)
  LIMIT $2)
"""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    message_id: UUID
    task_id: UUID
    kind: str
    routing_key: str
    payload: str
    """The JSON body exactly as stored; sent as is."""
    seq: int | None
    """A notification's `seq` (the `x-seq` header); None for a job."""
    traceparent: str | None
    attempts: int
    committed_at: float = 0.0
    """When the row was written (epoch seconds): its writer's last statements before COMMIT
    insert it, so this is the commit instant to within a statement. Sent as `x-committed-at-us`,
    the start of the relay's and the gateway's latency figures."""


def row_from(record: Any) -> OutboxRow:
    """The row of a statement that selects `ROW_COLUMNS`."""
    return OutboxRow(
        id=record["id"],
        message_id=record["message_id"],
        task_id=record["task_id"],
        kind=record["kind"],
        routing_key=record["routing_key"],
        payload=record["payload"],
        seq=record["seq"],
        traceparent=record["traceparent"],
        attempts=record["attempts"],
        committed_at=record["committed_at"],
    )


@dataclass(frozen=True, slots=True)
class Backlog:
    pending: int
    oldest_age_seconds: float | None
    parked: int


@dataclass(frozen=True, slots=True)
class ParkedRow:
    id: int
    task_id: UUID
    kind: str
    message_id: UUID
    attempts: int
    last_error: str | None
    parked_seconds: float


class OutboxDelivery:
    """The outbox rows on their way out, on one asyncpg connection (see the module's docstring).

    `timeout` bounds each claim and mark (the relay's session gives its query timeout; a unit
    of work's transaction needs none of its own).
    """

    def __init__(self, conn: Connection, timeout: float | None = None) -> None:
        self._conn = conn
        self._timeout = timeout

    async def claim(
        self, limit: int, busy: Sequence[UUID] = (), buckets: frozenset[int] | None = None
    ) -> list[OutboxRow]:
        """Up to `limit` due rows of these partition buckets (None: every one), in id (commit)
        order per task, skipping the `busy` tasks (those with rows in flight)."""
        claim = _claim(buckets)
        records = await self._conn.fetch(claim, limit, list(busy), timeout=self._timeout)
        return [row_from(r) for r in records]

    async def mark_published(self, ids: Sequence[int]) -> list[int]:
        """Mark confirmed rows; the ids this call marked (not ones marked already)."""
        records = await self._conn.fetch(_MARK_PUBLISHED, list(ids), timeout=self._timeout)
        return [int(r[0]) for r in records]

    async def mark_failed(self, failures: Sequence[tuple[int, str, float | None]]) -> None:
        """(id, error, retry delay or None to park) for each row that failed on its own."""
        await self._conn.execute(
            _MARK_FAILED,
            [f[0] for f in failures],
            [f[1][:MAX_ERROR_CHARS] for f in failures],
            [f[2] for f in failures],
            timeout=self._timeout,
        )

    async def backlog(self) -> Backlog:
        """Rows waiting (estimated past EXACT_BACKLOG_LIMIT), the oldest one's age, rows parked."""
        row = await self._conn.fetchrow(_STATS)
        pending = int(row["counted"])
        if pending > EXACT_BACKLOG_LIMIT:
            pending = max(pending, int(row["last_id"]) - int(row["first_id"]) + 1)
        return Backlog(pending, row["oldest_age"], int(row["parked"]))

    async def delete_published(self, older_than_seconds: float, limit: int) -> int:
        """Delete up to `limit` rows published more than `older_than_seconds` ago; how many."""
        status = await self._conn.execute(_DELETE_PUBLISHED, float(older_than_seconds), limit)
        return affected(status)

    async def parked(self, limit: int) -> list[ParkedRow]:
        """Up to `limit` parked rows, oldest first."""
        return [
            ParkedRow(
                id=r["id"],
                task_id=r["task_id"],
                kind=r["kind"],
                message_id=r["message_id"],
                attempts=r["attempts"],
                last_error=r["last_error"],
                parked_seconds=r["parked_seconds"],
            )
            for r in await self._conn.fetch(_PARKED, limit)
        ]

    async def lock_parked_of_tasks(self, ids: Sequence[int]) -> list[tuple[int, UUID]]:
        """(id, task_id) of every parked row of the tasks these rows belong to, in id order,
        locked until the transaction ends."""
        rows = await self._conn.fetch(_PARKED_OF_TASKS, list(ids))
        return [(int(r["id"]), r["task_id"]) for r in rows]

    async def replay(self, ids: Sequence[int]) -> list[tuple[int, UUID]]:
        """Put these parked rows back in line and wake the relays (NOTIFY, on commit);
        (id, task_id) of each row put back."""
        rows = await self._conn.fetch(_REPLAY_PARKED, list(ids))
        await self._conn.execute(_NOTIFY, OUTBOX_CHANNEL)
        return [(int(r["id"]), r["task_id"]) for r in rows]
