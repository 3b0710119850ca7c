"""Each content item's token usage, as the generator reported it (docs/protocol.md §6, §9).

`content_items.usage` is `{"prompt_tokens", "completion_tokens"}` for an item the built-in
`openai` generator completed, NULL otherwise (a plain generator reports none). Nullable and
without a default, so adding it rewrites no row.

Revision ID: 0008_item_usage
Revises: 0007_fair_turns
Create Date: 2026-12-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0008_item_usage"
down_revision: str | None = "0007_fair_turns"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("content_items", sa.Column("usage", JSONB, nullable=True))


def downgrade() -> None:
    op.drop_column("content_items", "usage")
