"""Shared catalogs: pgvector on PostgreSQL, named roots, and leases on pending photos.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 00:00:00

On PostgreSQL the pgvector extension is created and `vectors.vector` becomes a `vector` (each
model's HNSW index is made with its first vector, `writes.add_vectors`). A PostgreSQL catalog
is always created by a photoindex that knows this revision, in one upgrade from nothing, so the
table is empty when its type changes. On both back ends: `roots.name` (machines sharing a catalog
map it to their own mount paths) and `photos.claimed_by`/`claim_until` (an indexer's lease on a
pending photo). See docs/scale.md.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    """Add the root names and photo claims; on PostgreSQL make vectors pgvector vectors."""
    if _postgres():
        op.execute("CREATE EXTENSION IF NOT EXISTS vector")
        if op.get_bind().exec_driver_sql("SELECT count(*) FROM vectors").scalar():
            raise RuntimeError("vectors is not empty: a PostgreSQL catalog is made at this revision from nothing")
        op.execute("ALTER TABLE vectors ALTER COLUMN vector TYPE vector USING NULL")
        # The great-circle distance of `--near` (SQLite gets it as a Python function, reads.distance_km).
        op.execute(
            "CREATE OR REPLACE FUNCTION near_km(lat float8, lon float8, lat0 float8, lon0 float8) RETURNS float8 "
            "LANGUAGE sql IMMUTABLE AS $$ SELECT 2 * 6371.0088 * asin(least(1.0, sqrt("
            "sin(radians(lat0 - lat) / 2) ^ 2"
            " + cos(radians(lat)) * cos(radians(lat0)) * sin(radians(lon0 - lon) / 2) ^ 2"
            "))) $$"
        )
    with op.batch_alter_table("roots") as batch:
        batch.add_column(sa.Column("name", sa.String(length=128), nullable=True))
        batch.create_unique_constraint(op.f("uq_roots_name"), ["name"])
    with op.batch_alter_table("photos") as batch:
        batch.add_column(sa.Column("claimed_by", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("claim_until", sa.DateTime(), nullable=True))


def downgrade() -> None:
    """Drop them again (a PostgreSQL catalog cannot go below this revision with vectors in it)."""
    with op.batch_alter_table("photos") as batch:
        batch.drop_column("claim_until")
        batch.drop_column("claimed_by")
    with op.batch_alter_table("roots") as batch:
        batch.drop_constraint(op.f("uq_roots_name"), type_="unique")
        batch.drop_column("name")
    if _postgres():
        for (name,) in op.get_bind().execute(
            sa.text(
                "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'vectors'"
                " AND indexname LIKE 'ix_vectors_hnsw_%'"
            )
        ):
            op.execute(f'DROP INDEX "{name}"')
        op.execute("DROP FUNCTION IF EXISTS near_km(float8, float8, float8, float8)")
        op.execute("ALTER TABLE vectors ALTER COLUMN vector TYPE bytea USING NULL")
