"""The relay's SQL over the outbox, and the row it claims.

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
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

_CLAIM = """
SELECT o.id, o.message_id, o.task_id, o.kind, o.routing_key, o.payload::text AS payload,
       (o.payload->>'seq')::bigint AS seq, o.headers->>'traceparent' AS traceparent, o.attempts,
       extract(epoch FROM o.created_at)::float8 AS committed_at
FROM outbox o
WHERE o.published_at IS NULL AND o.parked_at IS NULL{partitions}
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


MARK_PUBLISHED = """
UPDATE outbox SET published_at = clock_timestamp()
WHERE id = ANY($1::bigint[]) AND published_at IS NULL
RETURNING id
"""

MARK_FAILED = """
UPDATE outbox o
SET attempts = o.attempts + 1,
    last_error = f.error,
    next_attempt_at = CASE WHEN f.delay IS NULL THEN o.next_attempt_at
                           ELSE clock_timestamp() + make_interval(secs => f.delay) END,
    parked_at = CASE WHEN f.delay IS NULL THEN clock_timestamp() END
FROM unnest($1::bigint[], $2::text[], $3::float8[]) AS f(id, error, delay)
WHERE o.id = f.id AND o.published_at IS NULL
"""

PARKED = """
SELECT id, task_id, kind, message_id, attempts, last_error,
       extract(epoch FROM clock_timestamp() - parked_at)::float8 AS parked_seconds
FROM outbox WHERE parked_at IS NOT NULL AND published_at IS NULL
ORDER BY id LIMIT $1
"""
"""The parked rows, oldest first (`outbox_parked_idx`): what `taskrelay admin outbox` lists."""

PARKED_OF_TASKS = """
SELECT id, task_id FROM outbox
WHERE parked_at IS NOT NULL AND published_at IS NULL
  AND task_id IN (SELECT task_id FROM outbox WHERE id = ANY($1::bigint[]))
ORDER BY id
FOR UPDATE
"""
"""Every parked row of the tasks these rows belong to, locked until the replay commits."""

REPLAY_PARKED = """
UPDATE outbox SET parked_at = NULL, attempts = 0, next_attempt_at = NULL
WHERE id = ANY($1::bigint[]) AND parked_at IS NOT NULL AND published_at IS NULL
RETURNING id, task_id
"""
"""MARK_FAILED's parking undone: the rows are due again, claimed in id order like any other
(`last_error` is kept until the next attempt, for the record)."""

EXACT_BACKLOG_LIMIT = 10_000
"""Up to this many pending rows the backlog is counted exactly; beyond, it is estimated."""

STATS = f"""
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

DELETE_PUBLISHED = """
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
