"""Claims on the reading of photos' text, for indexers sharing a catalog.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 00:00:00

`text_claims` holds one row per content an indexer of a shared (PostgreSQL) catalog is reading
with OCR, until its lease runs out, so two machines never read the same photo twice
(catalog/text.py `claim`, docs/scale.md). Created on SQLite too, where nothing writes it (one
writer reads at a time), so both back ends keep one schema.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the claims table."""
    op.create_table(
        "text_claims",
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("claimed_by", sa.String(length=128), nullable=False),
        sa.Column("claim_until", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("content_hash", name=op.f("pk_text_claims")),
    )


def downgrade() -> None:
    """Drop it (claims in flight are only leases)."""
    op.drop_table("text_claims")
