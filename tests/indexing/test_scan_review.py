"""Second review of the streaming scan, the plain-SQL reads and the fast model copies: attempts to break them.

The scan runs with rounds of 2 photos and catalog pages of 2 rows (`tiny`), so a library of a dozen photos
crosses many round and page boundaries. Outcomes are checked against the disk (every candidate photo indexed
with its content hash, nothing else live) and against a one-round run on an identical library. The defects
this review found are fixed; their tests stay as regression tests.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import and_, or_, select

from photoindex.catalog import reads
from photoindex.catalog import writes as catalog
from photoindex.catalog.db import open_database
from photoindex.config import Config, ScanConfig
from photoindex.indexing import indexer
from photoindex.indexing.indexer import Indexer, IndexReport, Progress
from photoindex.inference.sessions.ort import OrtSession
from photoindex.library import open_library
from photoindex.photos.scanner import content_hash, walk
from photoindex.testing.photos import make_photo

# ---------------------------------------------------------------- helpers


@pytest.fixture
def tiny(monkeypatch: pytest.MonkeyPatch) -> None:
    """Rounds of 2 photos (or vanished rows) and catalog pages of 2 rows."""
    monkeypatch.setattr(indexer, "WORK_ROUND", 2)
    monkeypatch.setattr(indexer._CatalogStream, "PAGE", 2)


def _home(config: Config, home: Path, **scan: Any) -> Config:
    """The same configuration with another home (and optionally other [scan] values)."""
    return dataclasses.replace(config, home=home, scan=dataclasses.replace(config.scan, **scan))


def _add_root(config: Config, path: Path) -> None:
    with open_library(config) as lib, lib.db.write() as s:
        catalog.add_root(s, path)


def _run(
    config: Config, *, dry_run: bool = False, stop_after: int = 0, events: list[Progress] | None = None
) -> IndexReport:
    """A full run over every root; with `stop_after`, Ctrl-C (Indexer.stop) at that many progress events."""
    seen: list[Progress] = [] if events is None else events
    with open_library(config) as lib:
        with lib.db.read() as s:
            roots = catalog.list_roots(s)
        run = Indexer(lib)

        def count(event: Progress) -> None:
            seen.append(event)
            if stop_after and len(seen) >= stop_after:
                run.stop.set()

        run.progress = count
        return run.run(roots, dry_run=dry_run)


def _run_paths(config: Config, paths: list[Path]) -> IndexReport:
    """The daemon's unit of work."""
    with open_library(config) as lib:
        return Indexer(lib).run_paths([str(p) for p in paths])


def _rows(config: Config) -> dict[str, tuple[str, str | None]]:
    """path -> (status, content hash) of every catalog row, read with plain sqlite3."""
    con = sqlite3.connect(config.db_path)
    con.text_factory = lambda b: b.decode("utf-8", "surrogateescape")
    try:
        return {p: (st, h) for p, st, h in con.execute("SELECT path, status, content_hash FROM photos")}
    finally:
        con.close()


def _live(config: Config) -> dict[str, str | None]:
    return {p: h for p, (st, h) in _rows(config).items() if st == "indexed"}


def _not_live(config: Config, base: Path) -> dict[str, str]:
    return {os.path.relpath(p, base): st for p, (st, _) in _rows(config).items() if st != "indexed"}


def _disk(folder: Path, scan: ScanConfig | None = None) -> dict[str, str]:
    """Every candidate photo under `folder` and the hash of its bytes: what the catalog must hold live."""
    return {f.path: content_hash(f.path) for f in walk(folder, scan or ScanConfig())}


def _photo(path: Path, seed: int) -> Path:
    return make_photo(path, (30 + seed * 37 % 200, 90 + seed % 5 * 20, 160), (40, 30), seed=seed)


def _raw(folder: Path, name: bytes, seed: int) -> Path:
    """A photo whose path has exactly these bytes below `folder` (non-UTF-8 allowed)."""
    full = os.fsencode(str(folder)) + b"/" + name
    os.makedirs(os.path.dirname(full), exist_ok=True)
    return _photo(Path(os.fsdecode(full)), seed)


# ---------------------------------------------------------------- names whose order is tricky


# Byte order and str order disagree for U+E000..U+FFFF / astral characters against escaped non-UTF-8 bytes;
# '-', '.', ' ', '0' sit around '/'; NFC and NFD spellings are different names; case matters.
_ODD = [
    "a-b.jpg", "a.jpg", "a/x.jpg", "a/0/z.jpg", "a b/y.jpg", "a./w.jpg", "a0.jpg", "A/q.jpg", "Z.jpg", "z.jpg",
    "\u00e9/n.jpg", "e\u0301/n.jpg", "caf\u00e9.jpg", "cafe\u0301.jpg", "x-/1.jpg", "x/1.jpg", "x.0/1.jpg",
    "\U0001f600.jpg", "\uff21/fw.jpg", "\ue000.jpg", "m/n/o/p.jpg", "m/n-o.jpg", "m/n.o.jpg", "m0.jpg",
]
_ODD_RAW = [b"\xff.jpg", b"a/\xe9-raw.jpg", b"\x80dir/\xfe.jpg", b"a-\xc3.jpg", b"\xf0\x9f.jpg"]


def _odd_library(lib: Path) -> None:
    for i, name in enumerate(_ODD):
        _photo(lib / name, i)
    for i, raw in enumerate(_ODD_RAW):
        _raw(lib, raw, 100 + i)


def _mutate_odd_library(lib: Path) -> None:
    """Deletions, a file that became a folder and a folder that became a file, an edit, moves to later names."""
    (lib / "a.jpg").unlink()
    _photo(lib / "a.jpg" / "inner.jpg", 300)  # a file replaced by a folder of the same name
    shutil.rmtree(lib / "m")
    _photo(lib / "m.png", 301)
    (lib / "m").write_bytes(b"not a photo")  # a folder replaced by a file (not a candidate)
    _photo(lib / "z.jpg", 302)  # same path, new content
    shutil.move(lib / "x", lib / "xx")  # a move to a later name: vanished before found again
    shutil.move(lib / "\u00e9", lib / "\u00e9\u00e9")
    os.unlink(os.fsencode(str(lib)) + b"/\xff.jpg")


def test_odd_names_in_tiny_rounds_match_the_disk_and_a_one_round_run(
    tmp_path: Path, config: Config, tiny: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Non-UTF-8, NFC/NFD, case, '-', '.', ' ', '0', emoji and private-use names, in rounds of 2 over pages of 2:
    the first run indexes exactly the disk, a second changes nothing (the walk and the catalog agree on the
    order, else rows would be judged vanished and re-added), and after deletions, a file<->folder swap, an edit
    and moves the catalog is the disk and what one round makes of an identical library."""
    lib = tmp_path / "lib"
    _odd_library(lib)
    _add_root(config, lib)
    first = _run(config)
    assert (first.added, first.failed, first.missing) == (len(_ODD) + len(_ODD_RAW), 0, 0)
    assert _live(config) == _disk(lib)
    again = _run(config)
    assert (again.unchanged, again.added, again.updated, again.missing) == (len(_ODD) + len(_ODD_RAW), 0, 0, 0)

    _mutate_odd_library(lib)
    third = _run(config)
    # New: a.jpg/inner.jpg and m.png; edited: z.jpg; moved (to later names): x/1.jpg and \u00e9/n.jpg; gone: a.jpg,
    # the three photos of m/ and the non-UTF-8 \xff.jpg.
    counts = (third.added, third.updated, third.moved, third.missing, third.encoded, third.reused, third.failed)
    assert counts == (2, 1, 2, 5, 3, 2, 0)
    assert _live(config) == _disk(lib)
    # The same library indexed in one round by another home.
    monkeypatch.setattr(indexer, "WORK_ROUND", 10_000)
    monkeypatch.setattr(indexer._CatalogStream, "PAGE", 2000)
    other = _home(config, tmp_path / "home-one-round")
    _add_root(other, lib)
    _run(other)
    assert _live(other) == _live(config)


# ---------------------------------------------------------------- moves across round boundaries


def _moved_library(tmp_path: Path, config: Config, name: str) -> tuple[Path, Config]:
    """A library with 4 photos in zz/ (a second one gets its own home), indexed; then zz/ is renamed `name`."""
    lib = tmp_path / f"lib-{name}"
    for i in range(4):
        _photo(lib / "zz" / f"p{i}.jpg", i)
    cfg = _home(config, tmp_path / f"home-{name}")
    _add_root(cfg, lib)
    assert _run(cfg).encoded == 4
    shutil.move(lib / "zz", lib / name)
    return lib, cfg


def test_a_move_to_a_later_name_across_rounds_is_relinked(tmp_path: Path, config: Config, tiny: None) -> None:
    """zz/ renamed zzz/: the old rows vanish in early rounds and are marked missing, so the new paths (later
    rounds) are hashed and take over those rows: moved, nothing encoded, nothing left missing."""
    lib, cfg = _moved_library(tmp_path, config, "zzz")
    report = _run(cfg)
    assert (report.moved, report.added, report.missing, report.encoded) == (4, 0, 0, 0)
    assert _not_live(cfg, lib) == {} and _live(cfg) == _disk(lib)


def test_a_move_to_an_earlier_name_across_rounds_is_relinked_like_in_one_round(
    tmp_path: Path, config: Config, tiny: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """zz/ renamed aa/ (ahead of zz/ in the walk): in one round the four photos are moved rows; in rounds of 2
    the same must hold, not four additions plus four leftover missing rows (counted as both added and missing)."""
    with monkeypatch.context() as one_round:
        one_round.setattr(indexer, "WORK_ROUND", 10_000)
        one_round.setattr(indexer._CatalogStream, "PAGE", 2000)
        lib1, cfg1 = _moved_library(tmp_path, config, "aa")
        single = _run(cfg1)
    assert (single.moved, single.added, single.missing, single.encoded) == (4, 0, 0, 0)
    assert _not_live(cfg1, lib1) == {}

    lib2, cfg2 = _moved_library(tmp_path / "b", config, "aa")
    rounds = _run(cfg2)
    assert rounds.encoded == 0 and _live(cfg2) == _disk(lib2)  # vectors are reused either way
    assert (rounds.moved, rounds.added, rounds.missing) == (4, 0, 0)
    assert _not_live(cfg2, lib2) == {}


# ---------------------------------------------------------------- copies, dry runs, the daemon's unit


def test_copies_across_rounds_are_encoded_once_and_a_dry_run_writes_nothing(
    tmp_path: Path, config: Config, tiny: None
) -> None:
    """Seven copies of one photo in seven folders (four rounds) encode one vector; a dry run over pending
    moves writes neither the catalog nor the index file, and plans exactly what the real run then does."""
    lib = tmp_path / "lib"
    source = _photo(tmp_path / "source.jpg", 1)
    for i in range(7):
        (lib / f"f{i}").mkdir(parents=True)
        shutil.copy(source, lib / f"f{i}" / "same.jpg")
    _photo(lib / "f3" / "other.jpg", 2)
    _add_root(config, lib)
    first = _run(config)
    assert (first.added, first.encoded, first.reused) == (8, 2, 6)
    assert _live(config) == _disk(lib)

    for i in range(7):  # each copy moves to another folder and name
        shutil.move(lib / f"f{i}" / "same.jpg", lib / f"f{6 - i}" / "same2.jpg")
    (lib / "f3" / "other.jpg").unlink()
    with open_library(config) as opened:
        index_file = opened.index_path()
    stamp = lambda p: (p.stat().st_mtime_ns, p.stat().st_size) if p.exists() else None  # noqa: E731
    files = [config.db_path, Path(f"{config.db_path}-wal"), index_file]
    before = (_rows(config), [stamp(p) for p in files])
    dry = _run(config, dry_run=True)
    assert (_rows(config), [stamp(p) for p in files]) == before
    planned = sorted((c.action, os.path.relpath(c.path, lib)) for c in dry.planned)
    assert planned == sorted(
        [("add", f"f{i}/same2.jpg") for i in range(7)]
        + [("missing", f"f{i}/same.jpg") for i in range(7)]
        + [("missing", "f3/other.jpg")]
    )
    real = _run(config)
    assert (real.moved, real.added, real.missing, real.encoded) == (7, 0, 1, 0)
    assert _live(config) == _disk(lib) and _not_live(config, lib) == {"f3/other.jpg": "missing"}
    again = _run(config)  # an already missing photo is not counted again
    assert (again.missing, again.unchanged, again.added, again.updated) == (0, 7, 0, 0)


def test_the_daemon_unit_with_overlapping_paths_counts_each_photo_once(
    tmp_path: Path, config: Config, tiny: None
) -> None:
    """run_paths with a folder, a file inside it, a gone file, a path outside every root and a file of another
    folder: each photo is added once; then a file replaced by a folder of the same name and a deleted folder,
    given as paths, are reconciled like a full run would (which then finds nothing left to do)."""
    lib = tmp_path / "lib"
    for i in range(4):
        _photo(lib / "a" / f"p{i}.jpg", i)
        _photo(lib / "b" / f"p{i}.jpg", 10 + i)
    _add_root(config, lib)
    first = _run_paths(config, [lib / "a", lib / "a" / "p1.jpg", lib / "a" / "p9.jpg", lib / "b" / "p0.jpg", tmp_path])
    assert (first.added, first.encoded, first.unchanged, first.missing) == (5, 5, 0, 0)
    assert sorted(os.path.relpath(p, lib) for p in _live(config)) == [*(f"a/p{i}.jpg" for i in range(4)), "b/p0.jpg"]
    overlap = _run_paths(config, [lib / "b", lib / "b" / "p0.jpg", lib / "b" / "p1.jpg", lib])
    assert (overlap.added, overlap.unchanged, overlap.missing) == (3, 5, 0)

    (lib / "a" / "p1.jpg").unlink()
    _photo(lib / "a" / "p1.jpg" / "in.jpg", 50)
    shutil.rmtree(lib / "b")
    swap = _run_paths(config, [lib / "a" / "p1.jpg", lib / "b"])
    assert (swap.added, swap.missing, swap.encoded) == (1, 5, 1)
    assert _live(config) == _disk(lib)
    full = _run(config)
    assert (full.added, full.updated, full.missing, full.unchanged) == (0, 0, 0, 4)


def test_a_gone_root_is_marked_missing_and_comes_back_without_encoding(
    tmp_path: Path, config: Config, tiny: None
) -> None:
    """A root folder that disappeared: its photos go missing (one warning), another root is untouched, and when
    the folder returns the photos are restored without encoding."""
    lib, kept = tmp_path / "lib", tmp_path / "kept"
    for i in range(3):
        _photo(lib / "d" / f"p{i}.jpg", i)
        _photo(kept / f"k{i}.jpg", 10 + i)
    _add_root(config, lib)
    _add_root(config, kept)
    assert _run(config).encoded == 6
    shutil.move(lib, tmp_path / "away")
    gone = _run(config)
    assert gone.missing == 3 and gone.unchanged == 3 and len(gone.warnings) == 1 and str(lib) in gone.warnings[0]
    assert set(_not_live(config, tmp_path).values()) == {"missing"} and len(_live(config)) == 3
    shutil.move(tmp_path / "away", lib)
    back = _run(config)
    assert (back.updated, back.encoded, back.missing) == (3, 0, 0)
    assert _live(config) == {**_disk(lib), **_disk(kept)}


# ---------------------------------------------------------------- interruptions


def _interrupted_library(lib: Path, cfg: Config) -> None:
    """4 photos in m/ and one in z/, indexed; then m/ renamed n/, z/gone.jpg deleted, 3 new photos in a/."""
    for i in range(4):
        _photo(lib / "m" / f"p{i}.jpg", i)
    _photo(lib / "z" / "gone.jpg", 9)
    _add_root(cfg, lib)
    assert _run(cfg).encoded == 5
    shutil.move(lib / "m", lib / "n")
    (lib / "z" / "gone.jpg").unlink()
    for i in range(3):
        _photo(lib / "a" / f"new{i}.jpg", 20 + i)


@pytest.mark.parametrize("stop_after", [1, 3, 5])
def test_ctrl_c_at_any_point_of_a_multi_round_run_is_repaired_by_the_next(
    tmp_path: Path, config: Config, tiny: None, stop_after: int
) -> None:
    """Indexer.stop after the n-th progress event (hashing or encoding, in any round): what was done stays, no
    photo on disk is missing, and the next run ends with the disk indexed, the moved photos relinked, only the
    deleted one missing, and the three new photos encoded once over both runs."""
    lib = tmp_path / "lib"
    _interrupted_library(lib, config)
    events: list[Progress] = []
    cut = _run(config, stop_after=stop_after, events=events)
    assert cut.interrupted and len(events) <= stop_after + 1  # no further round starts (one closing event)
    on_disk = set(_disk(lib))
    assert not {p for p, (st, _) in _rows(config).items() if st == "missing"} & on_disk
    final = _run(config)
    assert not final.interrupted and cut.encoded + final.encoded == 3
    assert cut.moved + final.moved == 4 and cut.added + final.added == 3
    assert _live(config) == _disk(lib) and _not_live(config, lib) == {"z/gone.jpg": "missing"}


_KILL_ME = textwrap.dedent(
    """
    import os, signal, sys
    from photoindex.catalog import writes as catalog
    from photoindex.indexing import indexer
    from photoindex.config import load_config
    from photoindex.library import open_library

    indexer.WORK_ROUND = 2
    indexer._CatalogStream.PAGE = 2
    events = []

    def progress(event):
        events.append(event)
        if len(events) >= int(sys.argv[1]):
            os.kill(os.getpid(), signal.SIGKILL)

    with open_library(load_config()) as lib:
        with lib.db.read() as s:
            roots = catalog.list_roots(s)
        indexer.Indexer(lib, progress=progress).run(roots)
    """
)


def test_kill_9_between_rounds_is_repaired_by_the_next_run(tmp_path: Path, config: Config, tiny: None) -> None:
    """SIGKILL of a real indexing process after its first rounds committed: the next run converges to the disk,
    relinks the moved photos and encodes nothing twice."""
    lib = tmp_path / "lib"
    _interrupted_library(lib, config)
    proc = subprocess.run([sys.executable, "-c", _KILL_ME, "3"], env=os.environ, capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    done = {os.path.relpath(p, lib) for p in _live(config)}
    assert "a/new0.jpg" in done  # the first rounds were committed before the kill
    final = _run(config)
    assert final.encoded == 3 - sum(1 for p in done if p.startswith("a/"))
    assert _live(config) == _disk(lib) and _not_live(config, lib) == {"z/gone.jpg": "missing"}


# ---------------------------------------------------------------- symlinks and excludes


def _link_listed_before(folder: Path, target: str, stem: str) -> Path:
    """A symlink in `folder` to `target` that os.scandir lists before `target` (found by trying names)."""
    for i in range(200):
        link = folder / f"{stem}{i:03d}"
        link.symlink_to(target)
        order = [e.name for e in os.scandir(folder)]
        if order.index(link.name) < order.index(target):
            return link
        link.unlink()
    pytest.skip("this file system lists no candidate name before the folder")


def test_a_folder_and_a_symlink_to_it_walk_the_name_that_sorts_first(tmp_path: Path) -> None:
    """lib/a and lib/b -> a are one folder walked once; which one must not depend on the order the file system
    lists them in (before this change: the first by name, "a")."""
    lib = tmp_path / "lib"
    for i in range(2):
        _photo(lib / "a" / f"p{i}.jpg", i)
    link = _link_listed_before(lib, "a", "b")
    assert sorted([link.name, "a"])[0] == "a"
    found = sorted(os.path.relpath(f.path, lib) for f in walk(lib, ScanConfig()))
    assert found == ["a/p0.jpg", "a/p1.jpg"]  # today: ['b000/p0.jpg', 'b000/p1.jpg'] or similar


def test_an_excluded_symlink_does_not_hide_the_folder_it_points_to(tmp_path: Path) -> None:
    """exclude = ["skip*"] and lib/skipNNN -> photos: the link is not walked, but lib/photos still is."""
    lib = tmp_path / "lib"
    for i in range(2):
        _photo(lib / "photos" / f"p{i}.jpg", i)
    _link_listed_before(lib, "photos", "skip")
    scan = ScanConfig(exclude=("skip*",))
    assert sorted(os.path.relpath(f.path, lib) for f in walk(lib, scan)) == ["photos/p0.jpg", "photos/p1.jpg"]


def test_a_symlink_loop_and_a_hidden_folder_are_walked_once_and_skipped(
    tmp_path: Path, config: Config, tiny: None
) -> None:
    """A link to the root inside it (a loop) adds nothing; a hidden folder's photos are not indexed; turning
    include_hidden off again marks them missing, and the photos outside it stay indexed."""
    lib = tmp_path / "lib"
    for i in range(3):
        _photo(lib / "d" / f"p{i}.jpg", i)
    _photo(lib / ".hidden" / "h.jpg", 5)
    (lib / "d" / "loop").symlink_to(lib)
    (lib / "d-loop").symlink_to(lib / "d")
    _add_root(config, lib)
    visible = _run(config)
    assert visible.added == 3 and _live(config) == _disk(lib)
    hidden = _home(config, config.home, include_hidden=True)
    assert _run(hidden).added == 1 and len(_live(config)) == 4
    after = _run(config)
    assert after.missing == 1 and _not_live(config, lib) == {".hidden/h.jpg": "missing"}
    assert len({os.path.relpath(p, lib).split("/")[0] for p in _live(config)}) == 1  # d/ or d-loop/, once


def test_a_photo_hint_inside_an_excluded_folder_is_not_indexed(tmp_path: Path, config: Config) -> None:
    """exclude = ["skip"]: a full run leaves lib/skip/x.jpg out; the daemon's run_paths on that file must too,
    else the photo flips between indexed (each hint) and missing (each full run)."""
    cfg = _home(config, config.home, exclude=("skip",))
    lib = tmp_path / "lib"
    _photo(lib / "keep" / "k.jpg", 1)
    _photo(lib / "skip" / "x.jpg", 2)
    _add_root(cfg, lib)
    assert _run(cfg).added == 1
    hint = _run_paths(cfg, [lib / "skip" / "x.jpg"])
    assert hint.added == 0 and _live(cfg) == _disk(lib, cfg.scan)


def test_a_root_whose_folder_became_a_file_is_reported_like_a_gone_folder(
    tmp_path: Path, config: Config, tiny: None
) -> None:
    """The photos are marked missing (that part holds), and the run says why, as for a deleted folder."""
    lib = tmp_path / "lib"
    for i in range(3):
        _photo(lib / f"p{i}.jpg", i)
    _add_root(config, lib)
    assert _run(config).added == 3
    shutil.rmtree(lib)
    lib.write_bytes(b"a file now")
    report = _run(config)
    assert report.missing == 3 and _live(config) == {}
    with open_library(config) as opened, opened.db.read() as s:
        (root,) = catalog.list_roots(s)
    assert report.warnings and not root.present


# ---------------------------------------------------------------- fast model copies


def test_a_model_rewritten_in_place_with_its_size_and_mtime_is_not_served_from_its_old_copy(
    toy_bundle: Path, tmp_path: Path
) -> None:
    """Weights changed inside the same file (same inode, same size, mtime restored): a session through the cache
    computes what the file now holds, not what its old copy held."""
    import onnx
    from onnx import numpy_helper

    source = tmp_path / "models" / "image_encoder.onnx"
    source.parent.mkdir()
    shutil.copy2(toy_bundle / "image_encoder.onnx", source)
    cache = tmp_path / "cache"
    pixels = {"images": np.random.default_rng(3).standard_normal((2, 3, 224, 224)).astype(np.float32)}
    old = OrtSession(source, cache_dir=cache).run(pixels)

    model = onnx.load(source)
    weights = max(model.graph.initializer, key=lambda t: numpy_helper.to_array(t).size)
    weights.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(weights), weights.name))
    data, st = model.SerializeToString(), source.stat()
    assert len(data) == st.st_size
    with open(source, "r+b") as fh:  # what cp does to an existing target: same inode
        fh.write(data)
    os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns))  # what -p / tar / rsync -t do
    assert source.stat().st_ino == st.st_ino
    new = OrtSession(source).run(pixels)
    assert not np.allclose(new[0], old[0])  # the edit changes what the model computes

    cached = OrtSession(source, cache_dir=cache)
    assert np.array_equal(cached.run(pixels)[0], new[0])


def test_a_copy_is_never_used_for_another_file_or_another_runtime_version(toy_bundle: Path, tmp_path: Path) -> None:
    """Two byte-identical model files (same name, other folders) get their own copies; a copy stamped for
    another ONNX Runtime version is not looked up; a stamp edited to claim another source is refused."""
    import onnxruntime as ort

    from photoindex.inference import modelcache

    cache = tmp_path / "cache"
    one, two = tmp_path / "one" / "m.onnx", tmp_path / "two" / "m.onnx"
    for path in (one, two):
        path.parent.mkdir()
        shutil.copy2(toy_bundle / "image_encoder.onnx", path)
    first, second = OrtSession(one, cache_dir=cache), OrtSession(two, cache_dir=cache)
    assert first.loaded_from is not None and second.loaded_from is not None
    assert first.loaded_from != second.loaded_from
    assert modelcache.lookup(one, cache, ort.__version__) == first.loaded_from
    assert modelcache.lookup(one, cache, ort.__version__ + ".other") is None
    stamp_file = first.loaded_from.parent / modelcache.STAMP
    stamp = stamp_file.read_text()
    stamp_file.write_text(stamp.replace(str(one.resolve()), str(two.resolve())))
    assert modelcache.lookup(one, cache, ort.__version__) is None


# ---------------------------------------------------------------- --folder filtering through plain SQL


_PREFIX_PHOTOS = [
    b"a/1.jpg", b"a/sub/2.jpg", b"a-b/3.jpg", b"a.b/4.jpg", b"a0/5.jpg", b"A/6.jpg", b"a b/7.jpg", b"a%/8.jpg",
    b"a_/9.jpg", "\u00e9/10.jpg".encode(), "e\u0301/11.jpg".encode(), b"\xff/12.jpg", b"\xffx/13.jpg",
    "\U0001f600/14.jpg".encode(), b"f.jpg", b"f.jpg.bak/15.jpg", b"ab/16.jpg", b"a/0/17.jpg",
    b"g.jpg", b"g.jpg/18.jpg", b"g.jpg0",  # a file and rows below the same path (it became a folder)
]
_PREFIXES = [
    b"a", b"a/", b"a//", b"a/sub", b"a-b", b"A", b"a%", b"a_", "\u00e9".encode(), "e\u0301".encode(), b"\xff",
    b"f.jpg", b"a/sub/2.jpg", b"", b"nope", b"a/0", "\U0001f600".encode(), b"g.jpg",
]


def _old_orm_ids(s: Any, model: str, prefix: str) -> list[int]:
    """vector_ids_under as the SQLAlchemy query it replaced (ccb3c65) built it."""
    photos, vectors = catalog._PHOTOS, catalog._VECTORS
    low = os.fsencode(prefix).rstrip(b"/") + b"/"
    query = (
        select(vectors.c.id)
        .select_from(vectors.join(photos, photos.c.content_hash == vectors.c.content_hash))
        .where(vectors.c.model_id == model, photos.c.status == "indexed")
        .where(or_(photos.c.path == prefix, and_(photos.c.path >= low, photos.c.path < low[:-1] + b"0")))
        .distinct()
        .order_by(vectors.c.id)
    )
    return [int(i) for i in s.execute(query).scalars()]


def test_folder_prefixes_read_through_plain_sql_match_the_old_orm_query_and_path_components(tmp_path: Path) -> None:
    """vector_ids_under and live_photos_for_vectors for prefixes next to '-', '.', ' ', '0', '%', '_', case,
    NFC/NFD, non-UTF-8 and emoji names, a trailing slash or two, a file, the library itself: the same ids as the
    replaced ORM query, and exactly the photos at the prefix or below it by path components; the scan's
    photo_states_under pages through the same rows in byte order, with pages of 1 and 2 rows."""
    top = tmp_path / "lib"
    base = os.fsencode(str(top)) + b"/"
    model, t0 = "clip-test", datetime(2024, 5, 1, tzinfo=timezone.utc)
    db = open_database(tmp_path / "home" / "photoindex.db")
    try:
        with db.write() as s:
            root = catalog.add_root(s, top, now=t0)
            hashes = [f"h{i}" for i in range(len(_PREFIX_PHOTOS))]
            rng = np.random.default_rng(0)
            ids = catalog.add_vectors(s, model, [(h, rng.standard_normal(4).astype(np.float32)) for h in hashes])
            for raw, digest in zip(_PREFIX_PHOTOS, hashes, strict=True):
                catalog.store_indexed(
                    s, root_id=root.id, path=os.fsdecode(base + raw), size=1, mtime_ns=1, content_hash=digest,
                    info=None, now=t0,
                )
        by_id = {i: os.fsdecode(base + raw) for i, raw in zip(ids, _PREFIX_PHOTOS, strict=True)}
        for prefix in [str(top), "/", *(os.fsdecode(base + raw) for raw in _PREFIXES)]:
            folder = prefix.rstrip("/") + "/"
            expected = sorted(i for i, p in by_id.items() if p == prefix or p.startswith(folder))
            with db.reads() as con:
                plain = reads.vector_ids_under(con, model, prefix).tolist()
                live = reads.live_photos_for_vectors(con, model, ids, prefix)
            with db.read() as s:
                old = _old_orm_ids(s, model, prefix)
            assert plain == old == expected, prefix
            assert {v: [p.path for p in ps] for v, ps in live.items()} == {i: [by_id[i]] for i in expected}
            for limit in (1, 2):
                paged, after = [], None
                with db.reads() as con:
                    for _ in range(len(_PREFIX_PHOTOS) + 2):
                        page = reads.photo_states_under(con, prefix, after=after, limit=limit)
                        if not page:
                            break
                        paged += [row.path for row in page]
                        after = os.fsencode(page[-1].path)
                    else:
                        pytest.fail(f"paging under {prefix!r} never ends")
                assert paged == sorted((by_id[i] for i in expected), key=os.fsencode), (prefix, limit)
    finally:
        db.close()
