"""`photoindex status`: what the library holds, the model, the index and the daemon, in one read."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from photoindex.catalog import reads
from photoindex.config import Config
from photoindex.library import Library, open_library


@dataclass(frozen=True)
class DaemonStatus:
    """The daemon as its status file and the writer lock tell it."""

    running: bool
    pid: int | None = None
    since: str | None = None
    queue: int | None = None
    last_batch: str | None = None
    last_error: str | None = None
    watching: str | None = None
    serving: str | None = None  # the socket on which the daemon answered a ping just now
    web: str | None = None  # the web page's address when the daemon serves it (`[web] listen`)


@dataclass
class LibraryStatus:
    """Everything `photoindex status` shows."""

    home: str
    database: str
    database_bytes: int
    model: str
    model_dir: str
    model_present: bool
    index_file: str
    index_bytes: int | None
    generation: int
    vectors: int
    counts: dict[str, int]
    roots: list[dict[str, Any]]
    last_failures: list[dict[str, str]]
    daemon: DaemonStatus
    writer: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    # Per model with vectors in the catalog: model_id, photos (indexed photos with its vector), vectors,
    # configured (docs/models.md); and the indexed photos the configured model has not encoded yet.
    models: list[dict[str, Any]] = field(default_factory=list)
    not_encoded: int = 0
    # The words read in photos (ocr/): counts of catalog/text.py's TextCounts, and whether reading is on.
    text: dict[str, Any] | None = None
    # Vectors no photo holds (an edited photo's old content): collected after `forget_missing_after_days`.
    unheld_vectors: int = 0
    unheld_bytes: int = 0
    collect_after_days: float = 0.0

    def lines(self) -> list[str]:
        """Human-readable lines."""
        out = [
            f"home:      {self.home}",
            f"model:     {self.model} ({'ready' if self.model_present else 'not installed'}) in {self.model_dir}",
            f"database:  {self.database} ({_size(self.database_bytes)})",
            f"index:     {self.index_file} "
            + (f"({_size(self.index_bytes)}, " if self.index_bytes is not None else "(not written yet, ")
            + f"{_count(self.vectors, 'vector')}, generation {self.generation})",
            "photos:    " + ", ".join(f"{n} {k}" for k, n in self.counts.items()),
        ]
        for i, m in enumerate(self.models):
            mark = " (configured)" if m["configured"] else ""
            out.append(
                ("models:    " if i == 0 else "           ")
                + f"{m['model_id']}{mark}: {_count(m['photos'], 'photo')} with vectors, "
                + _count(m["vectors"], "vector")
            )
        if self.unheld_vectors:
            when = (
                f"collected {self.collect_after_days:g} days after they were last used"
                if self.collect_after_days > 0
                else "kept ([index] forget_missing_after_days = 0)"
            )
            out.append(
                f"unused:    {self.unheld_vectors} vectors ({_size(self.unheld_bytes)}) no photo holds; {when}"
            )
        if self.not_encoded:
            out.append(
                f"           {self.not_encoded} photos not encoded for the configured model yet: "
                "run `photoindex reindex` (or let the daemon catch up)"
            )
        if self.roots:
            out.append("roots:")
            for r in self.roots:
                state = "" if r["present"] else "  [not present]"
                out.append(
                    f"  {r['path']}{_named(r)}  {_count(r['photos'], 'photo')}, last scan "
                    + (_when(r["last_scan_at"]) if r["last_scan_at"] else "never")
                    + state
                )
        else:
            out.append("roots:     none (add one with `photoindex index PATH`)")
        d = self.daemon
        if d.running:
            out.append(
                f"daemon:    running, pid {d.pid}, since {_when(d.since)}, queue {d.queue}, "
                f"last batch {_stamped(d.last_batch)}"
            )
            if d.watching:
                out.append(f"           {d.watching}")
            if d.serving:
                out.append(f"searches:  served by the daemon (socket {d.serving})")
            if d.web:
                out.append(f"web page:  {d.web}")
        else:
            out.append("daemon:    not running")
        if d.last_error:
            out.append(f"           last error: {_stamped(d.last_error)}")
        if self.writer and not d.running:
            w = self.writer
            out.append(f"writer:    pid {w.get('pid')} ({w.get('purpose')}) since {_when(w.get('since'))}")
        if self.text is not None:
            t = self.text
            if t["enabled"]:
                again = f", {t['outdated']} to read again (new OCR models)" if t.get("outdated") else ""
                out.append(
                    f"text:      {_count(t['read'], 'photo')} read ({t['with_text']} with text), "
                    f"{t['skipped']} skipped by the gate, {t['failed']} failed, {t['waiting']} waiting{again}"
                )
            else:
                out.append(f"text:      not read ({t['why']})")
        progress = (self.writer or {}).get("progress")
        if progress:
            total = progress.get("total")
            rate = progress.get("rate") or 0
            out.append(
                f"progress:  {progress.get('stage')} {progress.get('done')}"
                + (f"/{total}" if total is not None else "")
                + (f" ({rate:.1f} photos/s)" if rate else "")
            )
        if self.last_failures:
            out.append("last failures:")
            for f in self.last_failures:
                out.append(f"  {f['path']}: {f['error']}")
        out.extend(self.notes)
        return out


def _count(n: int, noun: str) -> str:
    """`1 photo`, `2 photos`."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _iso(when: datetime | None) -> str | None:
    """A timestamp for JSON: ISO 8601 to the second, UTC."""
    return None if when is None else when.astimezone(timezone.utc).isoformat(timespec="seconds")


def _named(root: dict[str, Any]) -> str:
    """' (root nas)' for a named root; its path is `nas:` where this machine does not map it (docs/scale.md)."""
    name = root.get("name")
    if not name:
        return ""
    if str(root["path"]).endswith(":"):
        return f" (root {name}: not mapped on this machine, see [catalog] roots)"
    return f" (root {name})"


def _when(iso: object) -> str:
    """An ISO timestamp as a person reads it: local time to the minute (`2026-12-03 10:05`)."""
    if not isinstance(iso, str) or not iso:
        return "-"
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return iso
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)  # the catalog stores naive UTC
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


def _stamped(text: str | None) -> str:
    """`ISO-TIME rest` (the daemon's last batch or error) with the time made readable."""
    if not text:
        return "-"
    head, _, rest = text.partition(" ")
    shown = _when(head)
    return f"{shown} {rest}" if shown != head else text


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _file_size(path: Any) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def daemon_status(config: Config) -> DaemonStatus:
    """Whether the daemon runs (its pid alive and matching its status file) and what it last reported."""
    try:
        data = json.loads(config.daemon_state_path.read_text())
    except (OSError, ValueError):
        return DaemonStatus(running=False)
    pid = data.get("pid")
    alive = False
    if isinstance(pid, int):
        try:
            os.kill(pid, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        except PermissionError:
            alive = True
    running = alive and data.get("state") != "stopped"
    serving = str(data["serving"]) if running and data.get("serving") else None
    if serving:
        from photoindex.search.client import ping

        serving = serving if ping(config.home) else None
    return DaemonStatus(
        running=running,
        pid=pid,
        since=data.get("since"),
        queue=data.get("queue"),
        last_batch=data.get("last_batch"),
        last_error=data.get("last_error"),
        watching=data.get("watching"),
        serving=serving,
        web=str(data["web"]) if running and data.get("web") else None,
    )


def library_status(config: Config) -> LibraryStatus:
    """Collect the status in one short read transaction (it never blocks the writer)."""
    with open_library(config) as lib:
        return status_of(lib)


def status_of(lib: Library) -> LibraryStatus:
    """The status of an open library (the web page asks every second; the daemon's library stays open)."""
    from photoindex.catalog.writerlock import lock_holder

    # The plain sqlite3 read path of `search`: a status never imports SQLAlchemy (it took longer than a search).
    config = lib.config
    with lib.db.reads() as con:
        counts = reads.count_by_status(con)
        # Paths as this machine reaches them: a named root at its mount (photoindex/mounts.py); status
        # never fails on a path it cannot translate.
        local = config.mounts.shown
        roots = [
            {**r, "path": local(str(r["path"])), "last_scan_at": _iso(r["last_scan_at"])}  # type: ignore[arg-type]
            for r in reads.root_summaries(con)
        ]
        failures = [{"path": local(p), "error": e} for p, e in reads.recent_failures(con, 5)]
        state = reads.index_state(con, lib.model_id)
        vectors = reads.vector_count(con, lib.model_id)
        per_model = reads.photos_per_model(con)
        models = sorted(set(reads.vector_models(con)) | {lib.model_id})
        model_rows = [
            {
                "model_id": m,
                "photos": per_model.get(m, 0),
                "vectors": reads.vector_count(con, m),
                "configured": m == lib.model_id,
            }
            for m in models
        ]
        not_encoded = reads.photos_without_vector(con, lib.model_id)
        text = _text_status(config, con, lib.model_id)
        unheld, unheld_bytes = reads.unheld_vectors(con)
        postgres = lib.db.kind == "postgresql"
        size = con.execute("SELECT pg_database_size(current_database())").fetchone()[0] if postgres else None
    index_path = lib.index_path()
    return LibraryStatus(
        home=str(config.home),
        database=config.catalog_location.shown,  # a PostgreSQL URL with its password masked
        database_bytes=int(size)
        if size is not None
        else (_file_size(config.db_path) or 0) + (_file_size(f"{config.db_path}-wal") or 0),
        model=lib.bundle.manifest.name,
        model_dir=str(lib.bundle.directory),
        model_present=not lib.bundle.missing(),
        index_file=str(index_path),
        index_bytes=_file_size(index_path),
        generation=state.generation,
        vectors=vectors,
        counts=counts,
        roots=roots,
        last_failures=failures,
        daemon=daemon_status(config),
        writer=lock_holder(config.lock_path),
        models=[m for m in model_rows if m["vectors"] or m["configured"]],
        not_encoded=not_encoded,
        text=text,
        unheld_vectors=unheld,
        unheld_bytes=unheld_bytes,
        collect_after_days=config.index.forget_missing_after_days,
    )


def _text_status(config: Config, con: Any, model_id: str) -> dict[str, Any]:
    """The text pass's counts, and whether it is on (and if not, why)."""
    from photoindex.catalog import text as catalog_text
    from photoindex.ocr.engine import INSTALL_HINT, available, models_id

    everything = config.ocr.gate == "all"
    counts = catalog_text.counts(
        con, model_id, include_skipped=everything, threshold=None if everything else config.ocr.gate_threshold,
        engine=models_id() if available() else None,
    ).to_json()
    if not config.ocr.enabled:
        return {"enabled": False, "why": "`[ocr] enabled = false`", **counts}
    if not available():
        return {"enabled": False, "why": INSTALL_HINT.split(" (")[0], **counts}
    return {"enabled": True, "gate": config.ocr.gate, **counts}
