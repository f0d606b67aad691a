"""Photo metadata for search filters: when (wall clock, UTC offset, source), lens, altitude, place.

Revision ID: 0004
Revises: 0002
Create Date: 2026-12-03 00:00:00

Rows written before this revision keep meta_version 0: the next scan reads their headers again
(no decoding, no encoding) and fills the new columns (docs/search.md, "Metadata").
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    sa.Column("gps_alt", sa.Float(), nullable=True),
    sa.Column("lens", sa.Text(), nullable=True),
    sa.Column("taken_local", sa.String(length=19), nullable=True),
    sa.Column("taken_offset", sa.Integer(), nullable=True),
    sa.Column("taken_source", sa.String(length=16), nullable=True),
    sa.Column("place_id", sa.Integer(), nullable=True),
    sa.Column("meta_version", sa.Integer(), server_default="0", nullable=False),
)
_INDEXES = (
    ("ix_photos_taken_local", ["taken_local"]),
    ("ix_photos_camera_make_camera_model", ["camera_make", "camera_model"]),
    ("ix_photos_gps_lat_gps_lon", ["gps_lat", "gps_lon"]),
    ("ix_photos_place_id", ["place_id"]),
    ("ix_photos_format", ["format"]),
)


def upgrade() -> None:
    """Add the metadata columns and their indexes, and the places tables."""
    # Plain ADD COLUMNs (no batch copy of a table of 100,000s of rows): SQLite adds nullable or
    # defaulted columns in place.
    for column in _COLUMNS:
        op.add_column("photos", column)
    for name, columns in _INDEXES:
        op.create_index(name, "photos", columns)
    op.create_table(
        "places",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("city", sa.Text(), nullable=False),
        sa.Column("region", sa.Text(), nullable=True),
        sa.Column("country_code", sa.String(length=2), nullable=False),
        sa.Column("country", sa.Text(), nullable=True),
        sa.Column("lat", sa.Float(), nullable=False),
        sa.Column("lon", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_places")),
    )
    op.create_table(
        "place_names",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("place_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["place_id"], ["places.id"], name=op.f("fk_place_names_place_id_places"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("name", "place_id", name=op.f("pk_place_names")),
    )
    op.create_index("ix_place_names_place_id", "place_names", ["place_id"])


def downgrade() -> None:
    """Drop the places tables, the indexes and the metadata columns."""
    op.drop_index("ix_place_names_place_id", table_name="place_names")
    op.drop_table("place_names")
    op.drop_table("places")
    for name, _ in _INDEXES:
        op.drop_index(name, table_name="photos")
    with op.batch_alter_table("photos") as batch:
        for column in reversed(_COLUMNS):
            batch.drop_column(column.name)
