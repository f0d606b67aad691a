"""Helpers shared by test modules (imported as `helpers`: pytest puts this folder on sys.path)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from typer.testing import CliRunner

from photoindex.cli.app import app
from photoindex.config import Config

if TYPE_CHECKING:
    from photoindex.indexing.indexer import IndexReport, Progress, Rounds

runner = CliRunner()

# A test on both catalog back ends (through `backend_env`) whose PostgreSQL run is marked slow: for tests
# that index several times, so the quick subset keeps its few minutes and the full run covers both.
on_both_backends = pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)]
)


def cli(*args: str) -> Any:
    """Run the CLI in-process with --json and return the parsed output (asserting exit 0)."""
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def sql(config: Config, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run one statement on the catalog (committed): the file with plain sqlite3, or a PostgreSQL catalog with
    psycopg (`?` placeholders either way); paths read as photoindex reads them."""
    location = config.catalog_location
    if location.is_postgres:
        import psycopg

        assert location.url is not None
        with psycopg.connect(location.url.replace("postgresql+psycopg://", "postgresql://", 1)) as pg:
            cursor = pg.execute(statement.replace("%", "%%").replace("?", "%s"), params)
            rows = cursor.fetchall() if cursor.description else []
            return [tuple(os.fsdecode(bytes(v)) if isinstance(v, bytes | memoryview) else v for v in r) for r in rows]
    con = sqlite3.connect(config.db_path)
    con.text_factory = lambda b: b.decode("utf-8", "surrogateescape")
    try:
        with con:
            return con.execute(statement, params).fetchall()
    finally:
        con.close()


def ocr_config(home: Path, bundle: Path, **extra: str) -> Config:
    """A home with the text pass on and reading every photo (`gate = "all"`: the toy CLIP cannot judge text)."""
    from photoindex.config import load_config

    env = {
        "PHOTOINDEX_HOME": str(home),
        "PHOTOINDEX_MODEL_BUNDLE": str(bundle),
        "PHOTOINDEX_INDEX_WORKERS": "1",
        "PHOTOINDEX_OCR_ENABLED": "1",
        "PHOTOINDEX_OCR_GATE": "all",
        **extra,
    }
    return load_config(environ=env)


def kill_9_at(
    config: Config, cmd: list[str], env: dict[str, str], count: str, thresholds: tuple[int, ...], *params: Any
) -> int:
    """Run `cmd` (a CLI run, as a subprocess) once per threshold and SIGKILL it as soon as the `count` statement
    on its catalog reaches the threshold; returns how many runs were killed mid-way (a run may finish first)."""
    kills = 0
    for threshold in thresholds:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 180
        while proc.poll() is None and time.monotonic() < deadline:
            try:
                n = sql(config, count, *params)[0][0] if config.db_path.exists() else 0
            except sqlite3.OperationalError:  # not created yet, or busy
                n = 0
            if n >= threshold:
                proc.send_signal(signal.SIGKILL)
                kills += 1
                break
            time.sleep(0.005)
        proc.wait(30)
    return kills


def backdate_missing(config: Config, days: float) -> None:
    """Pretend the missing photos went missing `days` earlier (timestamps are stored as naive UTC text)."""
    if config.catalog_location.is_postgres:
        sql(config, "UPDATE photos SET updated_at = updated_at - ? * interval '1 day' WHERE status = 'missing'", days)
        return
    sql(config, "UPDATE photos SET updated_at = datetime(updated_at, ?) WHERE status = 'missing'", f"-{days} days")


def statuses(config: Config) -> dict[str, str]:
    """path -> status of every catalog row."""
    return dict(sql(config, "SELECT path, status FROM photos"))


def live_paths(config: Config) -> set[str]:
    """The paths of the indexed (live) photos."""
    return {p for p, st in statuses(config).items() if st == "indexed"}


def on_disk(folder: Path) -> set[str]:
    """Every file below `folder`, as the catalog spells its path."""
    return {str(p) for p in folder.rglob("*") if p.is_file()}


def vector_count(config: Config) -> int:
    """How many vectors the catalog holds."""
    return int(sql(config, "SELECT count(*) FROM vectors")[0][0])


def index_file_vectors(config: Config) -> int:
    """How many vectors the saved index file of the home holds."""
    from photoindex.vectors.index import VectorIndex

    (path,) = (config.home / "index").glob("*.idx")
    return len(VectorIndex.load(path))


# os.fsync spies (the `fsynced` fixture) read the path of each descriptor from /proc.
needs_proc = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads fd paths from /proc")


def index_roots(
    config: Config,
    *,
    dry_run: bool = False,
    stop_when: Any = None,
    events: list[Any] | None = None,
    rounds: Rounds | None = None,
) -> IndexReport:
    """One reconciliation of every root by the real Indexer (in `rounds`, default the indexer's); each progress
    event is appended to `events` (if given), then `stop_when(event) -> True` sets the run's stop (Ctrl-C)."""
    from photoindex.catalog import writes as catalog
    from photoindex.indexing.indexer import Indexer, Rounds
    from photoindex.library import open_library

    with open_library(config) as lib:
        with lib.db.read() as s:
            roots = catalog.list_roots(s)
        run = Indexer(lib, rounds=rounds or Rounds())

        def progress(event: Progress) -> None:
            if events is not None:
                events.append(event)
            if stop_when is not None and stop_when(event):
                run.stop.set()

        run.progress = progress
        return run.run(roots, dry_run=dry_run)


def ranked(hits: list[dict[str, Any]]) -> list[tuple[float, str]]:
    """Search hits by score then path, without those tied with the last: the toy model scores many photos
    exactly alike, and which of a tie made the cut (and in which order) is up to the index."""
    if not hits:
        return []
    last = min(h["score"] for h in hits)
    return sorted((-round(h["score"], 4), h["path"]) for h in hits if h["score"] > last + 1e-4)


def machine_env(home: Path, url: str, bundle: Path, **settings: str) -> dict[str, str]:
    """The environment of one machine sharing the catalog at `url`: its own home, the toy model, one decode
    worker, batches of 4, and `settings` as PHOTOINDEX_<SECTION>_<KEY> (e.g. CATALOG_LEASE_SECONDS="30")."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PHOTOINDEX_")}
    env.update(
        PHOTOINDEX_HOME=str(home),
        PHOTOINDEX_MODEL_BUNDLE=str(bundle),
        PHOTOINDEX_INDEX_WORKERS="1",
        PHOTOINDEX_INDEX_BATCH_SIZE="4",
        PHOTOINDEX_CATALOG_URL=url,
        **{f"PHOTOINDEX_{key}": value for key, value in settings.items()},
    )
    return env
