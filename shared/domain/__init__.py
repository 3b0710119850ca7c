"""The pure domain: tasks, their items, and the one state machine. No framework, no driver."""

from shared.domain.listing import (
    ItemDetail,
    ItemPage,
    ItemRow,
    decode_cursor,
    encode_cursor,
)
from shared.domain.model import (
    CONTENT_TYPES,
    MAX_ERROR_CHARS,
    ContentType,
    ItemCounts,
    ItemKey,
    ItemStatus,
    JobDispatch,
    Notification,
    Status,
    TaskState,
    TaskView,
    clip_error,
)
from shared.domain.overview import ATTENTION, TaskFilter, TaskSummary
from shared.domain.state_machine import (
    FINAL,
    TRANSITIONS,
    Change,
    Kind,
    Rule,
    plan_event,
    plan_transition,
)

__all__ = [
    "ATTENTION",
    "CONTENT_TYPES",
    "FINAL",
    "MAX_ERROR_CHARS",
    "TRANSITIONS",
    "Change",
    "ContentType",
    "ItemCounts",
    "ItemDetail",
    "ItemKey",
    "ItemPage",
    "ItemRow",
    "ItemStatus",
    "JobDispatch",
    "Kind",
    "Notification",
    "Rule",
    "Status",
    "TaskFilter",
    "TaskState",
    "TaskSummary",
    "TaskView",
    "clip_error",
    "decode_cursor",
    "encode_cursor",
    "plan_event",
    "plan_transition",
]
