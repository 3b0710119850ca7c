"""Application services: the commands the API, the worker and the reconciler run.

Each writes through the caller's unit of work; the caller commits once the whole change,
its notification and any job dispatch are written, and only then answers.
"""

from shared.service.items import ItemsListing, get_item, list_items
from shared.service.tasks import (
    NewTask,
    RetryResult,
    cancel_task,
    create_task,
    get_task_view,
    require_owner,
    retry_task,
)
from shared.service.transitions import emit_event, transition

__all__ = [
    "ItemsListing",
    "NewTask",
    "RetryResult",
    "cancel_task",
    "create_task",
    "emit_event",
    "get_item",
    "get_task_view",
    "list_items",
    "require_owner",
    "retry_task",
    "transition",
]
