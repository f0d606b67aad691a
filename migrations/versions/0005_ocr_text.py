"""photo_text: the words read in photos (OCR), and their full-text index (FTS5).

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-03 00:00:00

One row per content hash (a photo is read once; a changed photo has a new hash). Two FTS5 tables
index the text, keyed by `photo_text.id` (see docs/ocr.md): `photo_text_words` (unicode61: words
of Latin scripts, with Chinese/Japanese/Korean runs written as overlapping bigrams by photoindex)
and `photo_text_trigrams` (trigram: any substring of three characters or more). FTS5 is SQLite's;
on another database the two tables are not made (PostgreSQL has its own full-text search).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create photo_text and, on SQLite, its two FTS5 tables."""
    op.create_table(
        "photo_text",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("engine", sa.String(length=128), nullable=False),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("lines", sa.Text(), nullable=True),
        sa.Column("gate", sa.Float(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("read_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "status IN ('text', 'none', 'skipped', 'failed')", name=op.f("ck_photo_text_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_photo_text")),
        sa.UniqueConstraint("content_hash", name=op.f("uq_photo_text_content_hash")),
    )
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE photo_text_words USING fts5(terms, tokenize = 'unicode61 remove_diacritics 2')"
        )
        op.execute("CREATE VIRTUAL TABLE photo_text_trigrams USING fts5(text, tokenize = 'trigram')")


def downgrade() -> None:
    """Drop the text and its index."""
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS photo_text_trigrams")
        op.execute("DROP TABLE IF EXISTS photo_text_words")
    op.drop_table("photo_text")
