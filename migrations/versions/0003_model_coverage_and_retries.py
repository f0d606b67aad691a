"""Failures remember their cause and attempts; vectors remember since when nobody holds them.

Revision ID: 0003
Revises: 0004
Create Date: 2025-01-03 00:00:00

- photos.failure_kind: the cause of a failure ('missing-decoder', 'timeout', 'crashed', ...);
- photos.failure_decoders: the image formats this photoindex could decode when it failed, so a
  failure for want of a decoder is retried once that decoder is there (docs/indexing.md);
- photos.failure_attempts: how many runs in a row failed the unchanged file (timeouts and crashed
  workers are retried a bounded number of times);
- vectors.orphaned_at: when a scan first found no photo holding the vector; it is collected after
  `[index] forget_missing_after_days`.

Plain ADD COLUMNs (no batch mode): the photos table is not copied, whatever its size.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the failure columns to photos and orphaned_at to vectors."""
    op.add_column("photos", sa.Column("failure_kind", sa.String(length=32), nullable=True))
    op.add_column("photos", sa.Column("failure_decoders", sa.Text(), nullable=True))
    op.add_column(
        "photos", sa.Column("failure_attempts", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column("vectors", sa.Column("orphaned_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    """Drop the columns again."""
    with op.batch_alter_table("vectors") as batch:
        batch.drop_column("orphaned_at")
    with op.batch_alter_table("photos") as batch:
        batch.drop_column("failure_attempts")
        batch.drop_column("failure_decoders")
        batch.drop_column("failure_kind")
