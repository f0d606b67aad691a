"""The words read in photos searchable on PostgreSQL: a tsvector table beside photo_text.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 00:00:00

SQLite has FTS5 (revision 0005). On PostgreSQL, `photo_text_terms` holds each text's terms as a
tsvector (written by photoindex, catalog/text.py: words normalized, Chinese/Japanese/Korean runs
as overlapping bigrams plus their last character, with positions, so a run is matched as a
phrase) under a GIN index. Substrings of Latin words ("bucks" in "STARBUCKS") are found with
ILIKE over `photo_text.text`; where the server offers pg_trgm, a trigram GIN index serves them,
otherwise they are a scan of the texts (docs/scale.md, "The words read in photos"). Nothing on SQLite.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """On PostgreSQL: the terms table, its GIN index, and a trigram index where pg_trgm is available."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    op.execute(
        "CREATE TABLE photo_text_terms (id integer PRIMARY KEY REFERENCES photo_text (id) ON DELETE CASCADE, "
        "terms tsvector NOT NULL)"
    )
    op.execute("CREATE INDEX ix_photo_text_terms ON photo_text_terms USING gin (terms)")
    text_rows = bind.exec_driver_sql("SELECT id, text FROM photo_text WHERE text IS NOT NULL").fetchall()
    if text_rows:  # texts read before this revision get their terms now
        from photoindex.catalog.text import pg_terms

        for row_id, body in text_rows:
            bind.exec_driver_sql(
                "INSERT INTO photo_text_terms (id, terms) VALUES (%(id)s, CAST(%(terms)s AS tsvector))",
                {"id": row_id, "terms": pg_terms(body)},
            )
    trgm = bind.exec_driver_sql("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'").first()
    if trgm is not None:
        savepoint = bind.begin_nested()  # the user may not be allowed to create it: substrings then scan
        try:
            bind.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            bind.exec_driver_sql("CREATE INDEX ix_photo_text_trigrams ON photo_text USING gin (text gin_trgm_ops)")
            savepoint.commit()
        except Exception:  # noqa: BLE001 - permission denied: back to the savepoint
            savepoint.rollback()


def downgrade() -> None:
    """Drop the terms table and the trigram index."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX IF EXISTS ix_photo_text_trigrams")
    op.execute("DROP TABLE IF EXISTS photo_text_terms")
