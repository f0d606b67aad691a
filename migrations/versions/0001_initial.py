"""Initial catalog: roots, photos, vectors, index_state.

Revision ID: 0001
Revises:
Create Date: 2025-01-01 00:00:00

Runs inside the single transaction photoindex.catalog.db opens for the whole upgrade (BEGIN IMMEDIATE,
foreign keys off). Revisions never import photoindex.catalog.schema, whose models move on: paths are
TEXT (holding the name's exact bytes) and timestamps naive-UTC DATETIME text.

On PostgreSQL (docs/scale.md) paths are BYTEA and sizes and mtimes BIGINT; SQLite's tables are as they were.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

PATH = sa.Text().with_variant(postgresql.BYTEA(), "postgresql")
BIGINT = sa.Integer().with_variant(sa.BigInteger(), "postgresql")

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the initial tables."""
    op.create_table(
        "roots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("path", PATH, nullable=False),
        sa.Column("added_at", sa.DateTime(), nullable=False),
        sa.Column("last_scan_at", sa.DateTime(), nullable=True),
        sa.Column("present", sa.Boolean(), server_default="1", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_roots")),
        sa.UniqueConstraint("path", name=op.f("uq_roots_path")),
    )
    op.create_table(
        "photos",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("root_id", sa.Integer(), nullable=False),
        sa.Column("path", PATH, nullable=False),
        sa.Column("size", BIGINT, nullable=False),
        sa.Column("mtime_ns", BIGINT, nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=True),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("format", sa.String(length=16), nullable=True),
        sa.Column("taken_at", sa.String(length=32), nullable=True),
        sa.Column("camera_make", sa.Text(), nullable=True),
        sa.Column("camera_model", sa.Text(), nullable=True),
        sa.Column("gps_lat", sa.Float(), nullable=True),
        sa.Column("gps_lon", sa.Float(), nullable=True),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("first_seen", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "status IN ('pending', 'indexed', 'failed', 'missing')", name=op.f("ck_photos_status")
        ),
        sa.ForeignKeyConstraint(
            ["root_id"], ["roots.id"], name=op.f("fk_photos_root_id_roots"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_photos")),
        sa.UniqueConstraint("path", name=op.f("uq_photos_path")),
    )
    op.create_index(op.f("ix_photos_content_hash"), "photos", ["content_hash"])
    op.create_index(op.f("ix_photos_status"), "photos", ["status"])
    op.create_index(op.f("ix_photos_root_id"), "photos", ["root_id"])
    op.create_table(
        "vectors",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("model_id", sa.String(length=128), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("vector", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vectors")),
        sa.UniqueConstraint("model_id", "content_hash", name=op.f("uq_vectors_model_id_content_hash")),
        sqlite_autoincrement=True,  # ids are FAISS ids: never reuse one
    )
    op.create_table(
        "index_state",
        sa.Column("model_id", sa.String(length=128), nullable=False),
        sa.Column("generation", sa.Integer(), server_default="0", nullable=False),
        sa.Column("vectors_epoch", sa.Integer(), server_default="0", nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("model_id", name=op.f("pk_index_state")),
    )


def downgrade() -> None:
    """Drop everything."""
    op.drop_table("index_state")
    op.drop_table("vectors")
    op.drop_index(op.f("ix_photos_root_id"), table_name="photos")
    op.drop_index(op.f("ix_photos_status"), table_name="photos")
    op.drop_index(op.f("ix_photos_content_hash"), table_name="photos")
    op.drop_table("photos")
    op.drop_table("roots")
