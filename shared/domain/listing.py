"""A task's items one page at a time: the rows, and the opaque cursor that continues a listing.

Pages are keyset pages over the items' `position` (stable, unique per task), so a page costs the
same at item 2,900 as at item 0 and an item never shows twice or goes missing because another
changed status between two pages. The cursor names the position it continues after and the
status filter it was made for; it is opaque to clients (base64url), and one that does not
decode, or that belongs to another filter, is bad input.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from shared.errors import InvalidInput

_VERSION = "i1"
_ANY = "*"
MAX_POSITION = 2**31 - 1
"""`position` is an `integer` column: a cursor beyond it cannot be one we issued."""


@dataclass(frozen=True, slots=True)
class ItemRow:
    """One content item as the items listing shows it."""

    position: int
    concept_id: str
    title: str
    content_type: str
    status: str
    attempts: int
    error: str | None
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ItemDetail:
    """One content item with what was generated for it, and the owner of its task."""

    owner_id: str
    row: ItemRow
    content: Any
    """What the generator returned (str or JSON object); None until completed."""
    usage: dict[str, int] | None
    """`prompt_tokens` and `completion_tokens`, when the generator reported them."""


@dataclass(frozen=True, slots=True)
class ItemPage:
    """Up to `limit` items of a task, with its owner and its `seq` as of the same read."""

    owner_id: str
    seq: int
    items: list[ItemRow]


def encode_cursor(position: int, status: str | None) -> str:
    raw = f"{_VERSION}:{status or _ANY}:{position}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None, status: str | None) -> int:
    """The position to continue after (-1 for the first page); InvalidInput for a bad cursor."""
    if cursor is None:
        return -1
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        raw = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
        version, made_for, position_text = raw.split(":")
        position = int(position_text)
    except (UnicodeError, binascii.Error, ValueError):
        raise InvalidInput("cursor is not one this API issued") from None
    if version != _VERSION or not position_text.isdigit() or position > MAX_POSITION:
        raise InvalidInput("cursor is not one this API issued")
    if made_for != (status or _ANY):
        raise InvalidInput("cursor belongs to another status filter: start again without it")
    return position
