"""The items listing behind `GET /api/v1/tasks/{task_id}/items`: one keyset page at a time;
and one item with its content and usage (`.../items/{concept_id}/{content_type}`).

One statement reads the task's owner, its `seq` and the page, so the ownership check costs no
extra round trip and `seq` says exactly which notifications the page already reflects (the task
page applies only item frames newer than that).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from uuid import UUID

from shared.domain import ItemKey, ItemRow, decode_cursor, encode_cursor
from shared.errors import InvalidInput, NotFound
from shared.service.ports import AbstractUnitOfWork

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
ITEM_STATUSES = ("pending", "completed", "failed")


@dataclass(frozen=True, slots=True)
class ItemsListing:
    items: list[dict[str, Any]]
    next: str | None
    """The cursor of the following page; None on the last."""
    seq: int
    """The task's `seq` as of the read: the page reflects every notification up to it."""


async def list_items(
    uow: AbstractUnitOfWork,
    owner_id: str,
    task_id: UUID,
    *,
    status: str | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> ItemsListing:
    """A page of the task's items in their stable order, optionally of one status only."""
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit must be 1 to {MAX_LIMIT}")
    if status is not None and status not in ITEM_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(ITEM_STATUSES)}")
    after = decode_cursor(cursor, status)
    page = await uow.items.page(task_id, after, limit + 1, status)
    if page is None or page.owner_id != owner_id:
        raise NotFound(f"task {task_id} not found")
    rows = page.items[:limit]
    more = len(page.items) > limit
    following = encode_cursor(rows[-1].position, status) if more else None
    return ItemsListing([_public(r) for r in rows], following, page.seq)


async def get_item(
    uow: AbstractUnitOfWork, owner_id: str, task_id: UUID, concept_id: str, content_type: str
) -> dict[str, Any]:
    """One item of the caller's task with `content` and `usage`; NotFound when the task is not
    theirs or has no such item (the same answer, so a probe learns nothing)."""
    if not (_storable(concept_id) and _storable(content_type)):
        raise NotFound(f"no such item in task {task_id}")  # no stored text can hold it
    detail = await uow.items.one(task_id, ItemKey(concept_id, content_type))
    if detail is None or detail.owner_id != owner_id:
        raise NotFound(f"no item {concept_id}/{content_type} in task {task_id}")
    return {**_public(detail.row), "content": detail.content, "usage": detail.usage}


def _storable(text: str) -> bool:
    """Text PostgreSQL could hold: UTF-8 without NUL (a path can carry either)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in text


def _public(row: ItemRow) -> dict[str, Any]:
    return {
        "concept_id": row.concept_id,
        "title": row.title,
        "content_type": row.content_type,
        "status": row.status,
        "attempts": row.attempts,
        "error": row.error,
        "updated_at": row.updated_at.isoformat(),
    }
