"""The catalog's tables as SQLAlchemy 2.x declarative models (the Alembic migrations mirror them).

The same models serve SQLite and PostgreSQL (docs/scale.md): a path is TEXT holding its bytes on
SQLite and BYTEA on PostgreSQL (both compare byte-wise), sizes and nanosecond mtimes are BIGINT
on PostgreSQL, and a vector is a float32 blob on SQLite and a pgvector `vector` on PostgreSQL.

Photos link to vectors by `(content_hash, model_id)`, not by a foreign key: a moved, renamed or
duplicated file shares the one stored vector (docs/architecture.md, invariant 6). Vector ids are FAISS ids,
so `vectors` uses AUTOINCREMENT and an id is never handed out twice, even after deletions.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.expression import FunctionElement
from sqlalchemy.types import TypeEngine

# Constraint names must be stable for Alembic's batch mode on SQLite (tables are recreated).
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

PHOTO_STATUSES: tuple[str, ...] = ("pending", "indexed", "failed", "missing")
WATCH_MODES: tuple[str, ...] = ("auto", "inotify", "poll")


class _PathBytes(FunctionElement[Any]):
    """A path's bytes as the path column's storage class: CAST to TEXT on SQLite, BYTEA as bound on PostgreSQL."""

    inherit_cache = True
    type = Text()


@compiles(_PathBytes)
def _path_bytes_sqlite(element: _PathBytes, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS TEXT)"


@compiles(_PathBytes, "postgresql")
def _path_bytes_postgres(element: _PathBytes, compiler: SQLCompiler, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


# 64-bit on PostgreSQL (an mtime in nanoseconds does not fit an INTEGER there); SQLite's INTEGER already is.
BigInt = Integer().with_variant(BigInteger(), "postgresql")


class FsPath(TypeDecorator[str]):
    """A file-system path stored as TEXT holding the name's exact bytes, so non-UTF-8 names round-trip.

    Python spells an undecodable name with lone surrogates (`os.fsdecode`), which SQLite's UTF-8
    binding refuses. The value is therefore bound as `os.fsencode` bytes and CAST to TEXT (SQLite
    keeps text bytes as given), and read back through the connection's surrogateescape
    `text_factory` (set in `photoindex.db`). Comparisons stay byte-wise (BINARY collation).
    """

    impl = Text
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """BYTEA on PostgreSQL, whose TEXT refuses bytes that are not UTF-8 and sorts by locale."""
        if dialect.name == "postgresql":
            return dialect.type_descriptor(LargeBinary())
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Any, dialect: Dialect) -> bytes | None:
        """Encode a str or PathLike to the name's bytes."""
        if value is None:
            return None
        return os.fsencode(value)

    def bind_expression(self, bindvalue: Any) -> ColumnElement[Any]:
        """Store the bytes as TEXT, not BLOB, on SQLite so the column has one storage class."""
        return _PathBytes(bindvalue)

    def process_result_value(self, value: Any, dialect: Dialect) -> str | None:
        """Return the `os.fsdecode` spelling (already decoded by the connection's text or bytea loader)."""
        if value is None or isinstance(value, str):
            return value
        return os.fsdecode(bytes(value))


class StoredVector(TypeDecorator[bytes]):
    """An embedding: float32 little-endian bytes on SQLite; a pgvector `vector` on PostgreSQL.

    Python sees bytes either way (`writes` stores and `reads.matrix` reads them); on PostgreSQL
    the vector type lets the HNSW index and `<#>` work on it (docs/scale.md). The column has no
    fixed dimension: each model gets its own partial index cast to its dimension.
    """

    impl = LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        """pgvector's type on PostgreSQL, a blob elsewhere."""
        if dialect.name == "postgresql":
            from pgvector.sqlalchemy import VECTOR

            return dialect.type_descriptor(VECTOR())
        return dialect.type_descriptor(LargeBinary())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        """Bytes (or an array) to what the back end stores."""
        if value is None:
            return None
        if dialect.name == "postgresql":
            import numpy as np

            data = np.frombuffer(value, dtype="<f4") if isinstance(value, (bytes, bytearray, memoryview)) else value
            return np.asarray(data, dtype=np.float32)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> bytes | None:
        """The stored float32 little-endian bytes."""
        if value is None or isinstance(value, bytes):
            return value
        import numpy as np

        if hasattr(value, "to_numpy"):  # pgvector.Vector
            value = value.to_numpy()
        return np.ascontiguousarray(value, dtype="<f4").tobytes()


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored as naive UTC text and returned timezone-aware (UTC)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        """Convert an aware datetime to naive UTC; refuse naive ones (their zone is a guess)."""
        if value is None:
            return None
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError(f"timestamps must be timezone-aware datetimes, got {value!r}")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        """Attach UTC to the stored naive value."""
        if value is None:
            return None
        assert isinstance(value, datetime)
        return value.replace(tzinfo=timezone.utc)


class Base(DeclarativeBase):
    """The declarative base; its metadata is Alembic's target."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class RootRow(Base):
    """A folder the user asked to index."""

    __tablename__ = "roots"
    __table_args__ = (
        CheckConstraint("watch_mode IN ('auto', 'inotify', 'poll')", name="watch_mode"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(FsPath, unique=True)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_scan_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    present: Mapped[bool] = mapped_column(Boolean, server_default="1")
    # Added in revision 0002: how the daemon watches this root (network folders need polling).
    watch_mode: Mapped[str] = mapped_column(String(16), server_default="auto")
    # Added in revision 0006: the name machines sharing a catalog know the root by; each maps it to
    # its own mount path (`[catalog] roots`, docs/scale.md). None: the path is the same everywhere.
    name: Mapped[str | None] = mapped_column(String(128), nullable=True, unique=True)


class PhotoRow(Base):
    """One file under a root: its stat facts, content hash, image metadata and indexing status."""

    __tablename__ = "photos"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'indexed', 'failed', 'missing')", name="status"),
        Index(None, "content_hash"),
        Index(None, "status"),
        Index(None, "root_id"),
        # Revision 0004: the search filters' ways in (docs/search.md, "Filters").
        Index(None, "taken_local"),
        Index(None, "camera_make", "camera_model"),
        Index(None, "gps_lat", "gps_lon"),
        Index(None, "place_id"),
        Index(None, "format"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    root_id: Mapped[int] = mapped_column(ForeignKey("roots.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(FsPath, unique=True)
    size: Mapped[int] = mapped_column(BigInt)
    mtime_ns: Mapped[int] = mapped_column(BigInt)
    content_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    format: Mapped[str | None] = mapped_column(String(16), nullable=True)
    taken_at: Mapped[str | None] = mapped_column(String(32), nullable=True)
    camera_make: Mapped[str | None] = mapped_column(Text, nullable=True)
    camera_model: Mapped[str | None] = mapped_column(Text, nullable=True)
    gps_lat: Mapped[float | None] = mapped_column(Float, nullable=True)
    gps_lon: Mapped[float | None] = mapped_column(Float, nullable=True)
    # Added in revision 0004 (docs/search.md, "Metadata"): the wall-clock time the photo was taken
    # ('YYYY-MM-DDTHH:MM:SS', sortable), its UTC offset in minutes when recorded, and where the time
    # came from ('exif' DateTimeOriginal, 'exif-datetime' the file's DateTime tag, 'mtime').
    gps_alt: Mapped[float | None] = mapped_column(Float, nullable=True)
    lens: Mapped[str | None] = mapped_column(Text, nullable=True)
    taken_local: Mapped[str | None] = mapped_column(String(19), nullable=True)
    taken_offset: Mapped[int | None] = mapped_column(Integer, nullable=True)
    taken_source: Mapped[str | None] = mapped_column(String(16), nullable=True)
    place_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # places.id, the nearest city
    # Which metadata reader filled the row: older rows are read again (headers only) by the next scan.
    meta_version: Mapped[int] = mapped_column(Integer, server_default="0")
    status: Mapped[str] = mapped_column(String(16), server_default="pending")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Added in revision 0003: a failure's cause, the formats decodable when it failed, and how many
    # runs in a row failed the unchanged file (see docs/indexing.md, "Failures").
    failure_kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    failure_decoders: Mapped[str | None] = mapped_column(Text, nullable=True)
    failure_attempts: Mapped[int] = mapped_column(Integer, server_default="0")
    # Added in revision 0006: a pending photo claimed by one indexer of a shared catalog, until its
    # lease runs out (`writes.claim_pending`); NULL when nobody is working on it.
    claimed_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    claim_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PlaceRow(Base):
    """A GeoNames city some photo was taken nearest to (revision 0004); its id is the GeoNames id."""

    __tablename__ = "places"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    city: Mapped[str] = mapped_column(Text)
    region: Mapped[str | None] = mapped_column(Text, nullable=True)
    country_code: Mapped[str] = mapped_column(String(2))
    country: Mapped[str | None] = mapped_column(Text, nullable=True)
    lat: Mapped[float] = mapped_column(Float)
    lon: Mapped[float] = mapped_column(Float)


class PlaceNameRow(Base):
    """One spelling (case-folded) of a place's city or country: what `--place` looks up."""

    __tablename__ = "place_names"
    __table_args__ = (Index(None, "place_id"),)

    name: Mapped[str] = mapped_column(Text, primary_key=True)
    place_id: Mapped[int] = mapped_column(ForeignKey("places.id", ondelete="CASCADE"), primary_key=True)


class VectorRow(Base):
    """One embedding of one content hash under one model; its id is the FAISS id."""

    __tablename__ = "vectors"
    __table_args__ = (
        UniqueConstraint("model_id", "content_hash"),
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[str] = mapped_column(String(128))
    content_hash: Mapped[str] = mapped_column(String(64))
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(StoredVector)  # `dim` float32 values (see StoredVector)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Added in revision 0003: when a scan first found no photo holding this vector (None: held).
    orphaned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class IndexStateRow(Base):
    """Per model: `generation` changes with every change to its vectors; `vectors_epoch` with deletions."""

    __tablename__ = "index_state"

    model_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, server_default="0")
    vectors_epoch: Mapped[int] = mapped_column(Integer, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


TEXT_STATUSES: tuple[str, ...] = ("text", "none", "skipped", "failed")

# The full-text index of the words read in photos: two FTS5 tables (created by revision 0005, not
# by this metadata; see docs/ocr.md). Their rowid is `photo_text.id`; SQLite keeps each one's data
# in shadow tables named after it (`_data`, `_idx`, `_content`, `_docsize`, `_config`).
# On PostgreSQL, revision 0007's `photo_text_terms` (a tsvector per text) and, where pg_trgm exists,
# the trigram index `ix_photo_text_trigrams` on photo_text.text take their place.
TEXT_INDEX_TABLES: tuple[str, ...] = ("photo_text_words", "photo_text_trigrams", "photo_text_terms")
TEXT_INDEX_INDEXES: tuple[str, ...] = ("ix_photo_text_terms", "ix_photo_text_trigrams")


def is_text_index_table(name: str | None) -> bool:
    """Whether a table is one of the FTS5 tables or their shadow tables (outside the declarative metadata)."""
    return name is not None and any(name == t or name.startswith(f"{t}_") for t in TEXT_INDEX_TABLES)


def outside_metadata(name: str | None, type_: str) -> bool:
    """Whether a table or index of a migrated catalog belongs to the words' full-text index (not declared here)."""
    if type_ == "table":
        return is_text_index_table(name)
    return type_ == "index" and name in TEXT_INDEX_INDEXES


class PhotoTextRow(Base):
    """The text read in one content (OCR), once per content hash: a changed photo has a new hash and is read again.

    `status`: 'text' (lines found), 'none' (read, no text), 'skipped' (the CLIP gate judged it not
    worth reading; `[ocr] gate = "all"` reads it), 'failed' (`error` says why; retried when the file changes).
    `lines` is JSON: [{"text", "confidence", "box": [[x, y] x 4]}] in the photo's displayed pixels.
    """

    __tablename__ = "photo_text"
    __table_args__ = (
        CheckConstraint("status IN ('text', 'none', 'skipped', 'failed')", name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    status: Mapped[str] = mapped_column(String(16))
    engine: Mapped[str] = mapped_column(String(128))
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    lines: Mapped[str | None] = mapped_column(Text, nullable=True)
    gate: Mapped[float | None] = mapped_column(Float, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    read_at: Mapped[datetime] = mapped_column(UTCDateTime)


class TextClaimRow(Base):
    """A content one indexer of a shared (PostgreSQL) catalog is reading with OCR, until its lease runs out
    (revision 0008; `catalog.text.claim`). Nothing writes it on SQLite, where one writer reads at a time."""

    __tablename__ = "text_claims"

    content_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    claimed_by: Mapped[str] = mapped_column(String(128))
    claim_until: Mapped[datetime] = mapped_column(UTCDateTime)
