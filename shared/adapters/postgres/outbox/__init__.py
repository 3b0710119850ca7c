"""The `outbox` table's one home: every statement that writes or reads it lives in this package.

Two sides, one module each:

- `writer.py`, `OutboxWriter` (a unit of work's `outbox`): what a change emits becomes rows in
  the caller's transaction. Its `emit` also saves the task's row (`roadmap_tasks`) in the same
  statement, the one statement of the code base that writes a task's status; and `add` marks
  the tasks of its job dispatches as waiting for a worker (`roadmap_tasks.waiting_since`).
- `delivery.py`, `OutboxDelivery`: the relay's claim and marks (on its dedicated session), the
  backlog figures and the cleanup (on its housekeeping's units of work), and the parked rows
  that `taskrelay admin outbox` lists and replays.
"""

from shared.adapters.postgres.outbox.delivery import (
    Backlog,
    OutboxDelivery,
    OutboxRow,
    ParkedRow,
)
from shared.adapters.postgres.outbox.writer import (
    OUTBOX_CHANNEL,
    PARTITION_BUCKETS,
    OutboxWriter,
    partition_key,
)

__all__ = [
    "OUTBOX_CHANNEL",
    "PARTITION_BUCKETS",
    "Backlog",
    "OutboxDelivery",
    "OutboxRow",
    "OutboxWriter",
    "ParkedRow",
    "partition_key",
]
