"""roots.watch_mode: how the daemon watches each root ('auto' | 'inotify' | 'poll').

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02 00:00:00

Network folders (NFS, SMB) deliver no inotify events: the daemon polls a root marked 'poll'.
The CHECK constraint makes batch mode recreate `roots`, which `photos` references; that is safe
because photoindex.catalog.db runs migrations with foreign keys off and checks them before committing.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add roots.watch_mode, defaulting to 'auto'."""
    with op.batch_alter_table("roots") as batch:
        batch.add_column(sa.Column("watch_mode", sa.String(length=16), server_default="auto", nullable=False))
        batch.create_check_constraint(
            op.f("ck_roots_watch_mode"), "watch_mode IN ('auto', 'inotify', 'poll')"
        )


def downgrade() -> None:
    """Drop roots.watch_mode."""
    with op.batch_alter_table("roots") as batch:
        batch.drop_constraint(op.f("ck_roots_watch_mode"), type_="check")
        batch.drop_column("watch_mode")
