"""The HTTP API's request and response shapes (docs/protocol.md §6), as msgspec structs.

Structural rules (types, lengths, counts) live here so that malformed input is refused with a
400 before a handler runs; rules that need the whole request (unique concept ids) live in the
service.
"""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from shared.domain import CONTENT_TYPES, ContentType

NO_NUL = "^[^\\x00]*$"
"""PostgreSQL text cannot hold a NUL character: refuse it as bad input, not as a 500."""
Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=200, pattern=NO_NUL)]
Text = Annotated[str, msgspec.Meta(min_length=1, max_length=1000, pattern=NO_NUL)]


class Concept(msgspec.Struct, forbid_unknown_fields=True):
    concept_id: Identifier
    title: Text


class CreateTask(msgspec.Struct, forbid_unknown_fields=True):
    roadmap_id: Identifier
    concepts: Annotated[list[Concept], msgspec.Meta(min_length=1, max_length=1000)]
    content_types: (
        Annotated[list[ContentType], msgspec.Meta(min_length=1, max_length=len(CONTENT_TYPES))]
        | None
    ) = None


class Counts(msgspec.Struct):
    total: int
    completed: int
    failed: int
    pending: int


class ItemsView(Counts):
    by_type: dict[str, Counts]


class TaskView(msgspec.Struct):
    task_id: str
    roadmap_id: str
    status: str
    current_step: str | None
    error_message: str | None
    completed_at: str | None
    created_at: str
    updated_at: str
    seq: int
    last_message: str | None
    """The `message` of the task's latest notification; null before the first."""
    items: ItemsView
    waiting_since: str | None = None
    """When the task became runnable with no item started since: it waits for a free worker
    (null while an item of it runs, or once it is finished)."""


class RetryView(msgspec.Struct):
    task: TaskView
    total_items: int
    items_by_type: dict[str, int]
    recovery_type: str


class ItemView(msgspec.Struct):
    concept_id: str
    title: str
    content_type: str
    status: str
    attempts: int
    error: str | None
    updated_at: str


class UsageView(msgspec.Struct):
    prompt_tokens: int
    completion_tokens: int


class ItemDetailView(ItemView):
    content: str | dict[str, Any] | None
    """What the generator returned; null until the item is completed."""
    usage: UsageView | None
    """The provider's token usage when the generator reported it, else null."""


class ItemsPage(msgspec.Struct):
    items: list[ItemView]
    next: str | None
    """The cursor of the following page (pass it as `cursor`); null on the last page."""


class ErrorView(msgspec.Struct):
    status_code: int
    detail: str
