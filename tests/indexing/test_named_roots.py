"""Named roots (docs/scale.md, "Roots on several machines"): machines that mount one share at different
paths share one catalog; photos are stored as `NAME:/relative`, each machine reads and reports them at
its own mount. Two machines are two homes whose `[catalog] roots` map `nas` to two different folders
holding hard links of the same photo files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import pg_database_url, psycopg_connect
from helpers import cli, machine_env, on_both_backends, runner, sql

from photoindex.catalog.db import open_catalog
from photoindex.catalog.location import CatalogLocation
from photoindex.cli.app import app
from photoindex.config import Config, load_config
from photoindex.errors import ConfigError, PhotoindexError
from photoindex.mounts import Mounts, parse_entries, root_name
from photoindex.testing.photos import make_photo_tree

N = 12


def linked_tree(source: Path, target: Path) -> None:
    """`target` holds hard links of every file under `source` (the same files, another path, no symlink)."""
    for folder, _, files in os.walk(source):
        dest = target / Path(folder).relative_to(source)
        dest.mkdir(parents=True, exist_ok=True)
        for name in files:
            os.link(Path(folder) / name, dest / name)


# ---------------------------------------------------------------- the translation


def test_mounts_translate_both_ways_and_leave_other_paths_alone(tmp_path: Path) -> None:
    mounts = Mounts(parse_entries(["nas=/mnt/photos", "usb = /media/usb/"]))
    assert mounts.stored("/mnt/photos") == "nas:"
    assert mounts.stored("/mnt/photos/2024/a b.jpg") == "nas:/2024/a b.jpg"
    assert mounts.stored("/mnt/photosx/a.jpg") == "/mnt/photosx/a.jpg"  # by components, not string prefix
    assert mounts.stored("/home/me/p.jpg") == "/home/me/p.jpg"
    assert mounts.local("nas:/2024/a b.jpg") == "/mnt/photos/2024/a b.jpg"
    assert mounts.local("usb:") == "/media/usb"
    assert mounts.local("/home/me/p.jpg") == "/home/me/p.jpg"
    assert mounts.local("other:/x.jpg") == "other:/x.jpg" and not mounts.mapped("other:/x.jpg")
    assert root_name("nas:/a") == "nas" and root_name("/mnt/a:b") is None and root_name("nas:x") is None
    # A mount reached through a symlink also matches a path given with symlinks resolved (`--folder`).
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    linked = Mounts(parse_entries([f"nas={tmp_path / 'link'}"]))
    assert linked.stored_given(str(tmp_path / "real" / "2024")) == "nas:/2024"
    assert linked.stored_given(str(tmp_path / "link" / "2024")) == "nas:/2024"


def test_a_catalog_path_leaving_its_mount_is_refused_not_opened() -> None:
    mounts = Mounts(parse_entries(["nas=/mnt/photos"]))
    assert mounts.local("nas:/2024/../a.jpg") == "/mnt/photos/a.jpg"
    for escaping in ("nas:/../../etc/passwd", "nas:/2024/../../x"):
        assert not mounts.mapped(escaping)
        with pytest.raises(PhotoindexError) as caught:
            mounts.local(escaping)
        assert escaping in caught.value.message and "/mnt/photos" in caught.value.message
        assert mounts.shown(escaping) == escaping  # status shows it as stored, never opens it
    assert mounts.shown("nas:/a.jpg") == "/mnt/photos/a.jpg" and mounts.shown("usb:/b.jpg") == "usb:/b.jpg"


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        ("nas:/mnt/photos", "not NAME=/mount/path"),
        ("nas=photos", "must be absolute"),
        ("n/s=/mnt", "not NAME="),
        # Nested mounts would store a photo under one root with another root's name.
        ("nas=/p\", \"inner=/p/album", "overlap"),
        ("nas=/p/album\", \"outer=/p", "overlap"),
    ],
)
def test_a_bad_roots_entry_is_a_config_error_naming_the_key(tmp_path: Path, entry: str, why: str) -> None:
    (tmp_path / "config.toml").write_text(f'[catalog]\nroots = ["{entry}"]\n')
    with pytest.raises(ConfigError) as caught:
        load_config(home=tmp_path, environ={})
    assert "[catalog] roots" in caught.value.message and why in caught.value.message
    assert str(tmp_path / "config.toml") in caught.value.message
    assert "NAME=/mount/path" in (caught.value.hint or "")


# ---------------------------------------------------------------- an existing library


@on_both_backends
def test_naming_the_root_of_an_existing_library_keeps_its_photos_and_vectors(
    backend_env: dict[str, str], tmp_path: Path, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A library made before the name was mapped (every SQLite library, or one copied to PostgreSQL): its rows
    are respelled in place, ids and vectors kept, nothing re-encoded, and every answer stays the same."""
    root = tmp_path / "Photos"
    make_photo_tree(root, N, seed=5)
    assert cli("index", str(root))["encoded"] == N
    before = sql(config, "SELECT id, path FROM photos ORDER BY id")
    real = str(root.resolve())
    assert all(p.startswith(real + "/") for _, p in before)
    hits = cli("search", "red")

    # The user maps the folder to a name (to share the library later): the same command names the root.
    monkeypatch.setenv("PHOTOINDEX_CATALOG_ROOTS", f"nas={root}")
    report = cli("index", str(root))
    assert report["encoded"] == 0 and report["added"] == 0 and report["missing"] == 0, report
    after = sql(config, "SELECT id, path FROM photos ORDER BY id")
    assert [i for i, _ in after] == [i for i, _ in before]
    assert [p for _, p in after] == ["nas:" + p[len(real):] for _, p in before]
    assert sql(config, "SELECT path, name FROM roots") == [("nas:", "nas")]
    # Searches answer with this machine's paths, as before; status names the root.
    assert cli("search", "red") == hits
    assert [(r["path"], r["name"]) for r in cli("status")["roots"]] == [(str(root), "nas")]
    assert cli("reindex")["unchanged"] == N


# ---------------------------------------------------------------- two machines on one PostgreSQL catalog


def machine(tmp_path: Path, name: str, url: str, toy_bundle: Path, mount: Path | None) -> dict[str, str]:
    """One machine: its own home, the shared catalog, `nas` mapped to its own mount (None: not mapped)."""
    roots = {} if mount is None else {"CATALOG_ROOTS": f"nas={mount}"}
    return machine_env(tmp_path / name, url, toy_bundle, OCR_ENABLED="false", **roots)


def run(env: dict[str, str], *args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "photoindex", *args, "--json"], env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.mark.slow
def test_two_machines_mounting_one_share_at_different_paths_share_its_photos(
    tmp_path: Path, pg_server: Any, toy_bundle: Path
) -> None:
    url = pg_database_url(pg_server)
    open_catalog(CatalogLocation(url=url)).close()
    mnt_a, mnt_b = tmp_path / "a-mnt" / "photos", tmp_path / "b-media" / "share"
    make_photo_tree(mnt_a, N, seed=9)
    linked_tree(mnt_a, mnt_b)
    a = machine(tmp_path, "a", url, toy_bundle, mnt_a)
    b = machine(tmp_path, "b", url, toy_bundle, mnt_b)

    # Both index at once, each through its own mount: one root, each photo encoded exactly once.
    first = subprocess.Popen([sys.executable, "-m", "photoindex", "index", str(mnt_a), "--json"], env=a,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = run(b, "index", str(mnt_b))
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    reports = [json.loads(out), second]
    assert sum(r["encoded"] for r in reports) == N, reports
    with psycopg_connect(url) as con:
        roots = con.execute("SELECT convert_from(path, 'UTF8'), name FROM roots").fetchall()
        paths = [os.fsdecode(bytes(p)) for (p,) in con.execute("SELECT path FROM photos WHERE status = 'indexed'")]
        vectors = con.execute("SELECT count(*) FROM vectors").fetchone()[0]
    assert roots == [("nas:", "nas")]
    assert len(paths) == N and all(p.startswith("nas:/") for p in paths)
    assert vectors == N

    # Each machine's searches and status answer at its own mount.
    for env, mount in ((a, mnt_a), (b, mnt_b)):
        hits = run(env, "search", "red", "-n", "50")
        assert hits and all(Path(h["path"]).is_relative_to(mount) and Path(h["path"]).is_file() for h in hits)
        folder = Path(hits[0]["path"]).parent
        inside = run(env, "search", "red", "--folder", str(folder), "-n", "50")
        assert inside and all(Path(h["path"]).parent == folder for h in inside)
        assert [r["path"] for r in run(env, "status")["roots"]] == [str(mount)]
    assert sorted(os.path.relpath(h["path"], mnt_a) for h in run(a, "search", "red", "-n", "50")) == sorted(
        os.path.relpath(h["path"], mnt_b) for h in run(b, "search", "red", "-n", "50")
    )

    # `reindex` on B finds every photo unchanged through its mount; a new photo there is found at B's path.
    make_photo_tree(mnt_b / "new", 2, seed=77)
    again = run(b, "reindex")
    assert again["encoded"] == 2 and again["missing"] == 0 and again["unchanged"] == N, again
    new_hits = run(a, "search", "red", "-n", "50", "--folder", str(mnt_a / "new"))
    assert all(Path(h["path"]).is_relative_to(mnt_a / "new") for h in new_hits)

    # A machine that does not map the name leaves the root alone: nothing marked missing.
    c = machine(tmp_path, "c", url, toy_bundle, None)
    elsewhere = run(c, "reindex")
    assert any("not mapped on this machine" in w and "[catalog] roots" in w for w in elsewhere["warnings"])
    with psycopg_connect(url) as con:
        assert con.execute("SELECT count(*) FROM photos WHERE status != 'indexed'").fetchone()[0] == 0


@pytest.mark.slow
def test_the_daemons_unit_of_work_and_the_photo_view_use_this_machines_mount(
    tmp_path: Path, pg_server: Any, toy_bundle: Path
) -> None:
    from photoindex.indexing.indexer import Indexer
    from photoindex.library import open_library
    from photoindex.web.service import WebService

    url = pg_database_url(pg_server)
    mnt_a, mnt_b = tmp_path / "mnt" / "photos", tmp_path / "Volumes" / "photos"
    make_photo_tree(mnt_a, 4, seed=3)
    linked_tree(mnt_a, mnt_b)
    run(machine(tmp_path, "a", url, toy_bundle, mnt_a), "index", str(mnt_a))
    b = load_config(environ=machine(tmp_path, "b", url, toy_bundle, mnt_b))
    make_photo_tree(mnt_b / "later", 1, seed=8)
    (added,) = [p for p in (mnt_b / "later").rglob("*") if p.is_file()]
    with open_library(b) as lib:
        # As the daemon's watcher hands it over: a path of this machine.
        report = Indexer(lib).run_paths([str(added)])
        assert report.encoded == 1 and not report.failures
        service = WebService(lib)
        with lib.db.reads() as con:
            (photo_id,) = con.execute(
                "SELECT id FROM photos WHERE path = ?", (os.fsencode("nas:" + str(added)[len(str(mnt_b)):]),)
            ).fetchone()
        view = service.photo_json(photo_id)
        assert view["path"] == str(added) and view["folder"] == str(added.parent)
        assert service.original(photo_id) == added
        assert service.view(photo_id)[:2] == b"\xff\xd8"  # decoded from the file at this machine's path
        assert service.roots() == [str(mnt_b)]
    # `forget` takes the root as this machine mounts it, and names it so.
    from photoindex.indexing.roots import forget_root

    forgot = forget_root(b, mnt_b)
    assert forgot.root == str(mnt_b) and forgot.photos == 5


# ---------------------------------------------------------------- a mapping added to an existing library


@on_both_backends
def test_every_command_works_right_after_the_mapping_is_added(
    tmp_path: Path, backend_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not only `index PATH` names the root: `search --folder` finds the photos before any writer ran,
    the daemon's unit of work names the root and indexes a new photo, and `reindex` keeps every photo."""
    from photoindex.indexing.indexer import Indexer
    from photoindex.library import open_library

    root = tmp_path / "Photos"
    make_photo_tree(root, 8, seed=5)
    assert cli("index", str(root))["encoded"] == 8
    folder = sorted(p for p in root.iterdir() if p.is_dir())[0]
    before = cli("search", "red", "--folder", str(folder))
    assert before
    dupes = cli("duplicates", "--folder", str(root), "--threshold", "0.01")

    monkeypatch.setenv("PHOTOINDEX_CATALOG_ROOTS", f"nas={root}")
    # No writer has run: the catalog still holds the absolute spelling, and --folder finds it.
    assert cli("search", "red", "--folder", str(folder)) == before
    assert cli("duplicates", "--folder", str(root), "--threshold", "0.01") == dupes

    # The daemon hands over a new photo's path: its unit of work names the root first.
    make_photo_tree(tmp_path / "extra", 1, seed=9)
    (new,) = [p for p in (tmp_path / "extra").rglob("*") if p.is_file()]
    (root / new.name).write_bytes(new.read_bytes())
    config = load_config()
    with open_library(config) as lib:
        report = Indexer(lib).run_paths([str(root / new.name)])
    assert report.added == 1 and report.encoded == 1, report
    assert sql(config, "SELECT path, name FROM roots") == [("nas:", "nas")]
    assert sql(config, "SELECT count(*) FROM photos WHERE path LIKE '/%'") == [(0,)]
    assert cli("search", "red", "--folder", str(folder)) == before  # now in the named spelling

    again = cli("reindex")
    assert again["roots"] == [str(root)] and again["unchanged"] == 9, again
    assert again["added"] == again["missing"] == again["encoded"] == 0, again


def test_reindex_and_the_daemons_scan_name_the_root_after_the_mapping_is_added(
    tmp_path: Path, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    from photoindex.catalog import writes as catalog
    from photoindex.indexing.indexer import Indexer
    from photoindex.library import open_library

    root = tmp_path / "Photos"
    make_photo_tree(root, 4, seed=5)
    assert cli("index", str(root))["encoded"] == 4
    ids = sql(config, "SELECT id FROM photos ORDER BY id")
    monkeypatch.setenv("PHOTOINDEX_CATALOG_ROOTS", f"nas={root}")
    make_photo_tree(root / "later", 2, seed=7)
    report = cli("reindex")
    assert report["roots"] == [str(root)] and report["added"] == 2 and report["unchanged"] == 4, report
    assert sql(config, "SELECT path FROM roots") == [("nas:",)]
    assert sql(config, "SELECT id FROM photos WHERE path LIKE 'nas:/%' ORDER BY id")[:4] == ids

    # A second library with the daemon's way in: `run` with the roots spelled as this machine reaches them.
    monkeypatch.delenv("PHOTOINDEX_CATALOG_ROOTS")
    other = tmp_path / "Other"
    make_photo_tree(other, 2, seed=11)
    assert cli("index", str(other))["encoded"] == 2
    monkeypatch.setenv("PHOTOINDEX_CATALOG_ROOTS", f"nas={root},usb={other}")
    with open_library(load_config()) as lib:
        with lib.db.read() as s:
            local = [dataclasses.replace(r, path=lib.config.mounts.local(r.path)) for r in catalog.list_roots(s)]
        scanned = Indexer(lib).run(local)
    assert sorted(scanned.roots) == sorted([str(root), str(other)]) and scanned.unchanged == 8, scanned
    assert sorted(sql(config, "SELECT path, name FROM roots")) == [("nas:", "nas"), ("usb:", "usb")]


def test_a_mount_inside_a_root_registered_by_its_path_is_refused_naming_both(
    tmp_path: Path, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    make_photo_tree(data / "photos", 6, seed=5)
    assert cli("index", str(data))["encoded"] == 6
    monkeypatch.setenv("PHOTOINDEX_CATALOG_ROOTS", f"nas={data / 'photos'}")
    for args in (["index", str(data / "photos")], ["reindex"]):
        result = runner.invoke(app, [*args, "--json"])
        assert result.exit_code == 1, result.output
        assert isinstance(result.exception, SystemExit)  # an error line, not a traceback
        assert f"nas to {data / 'photos'}, inside {data}," in result.output
        assert f"nas={data}" in result.output  # what to do instead
    # Nothing changed: one root, each photo once.
    assert sql(config, "SELECT path FROM roots") == [(str(data.resolve()),)]
    assert sql(config, "SELECT count(*), count(DISTINCT content_hash) FROM photos") == [(6, 6)]


@on_both_backends
def test_a_second_machine_naming_its_old_root_merges_into_the_named_one(
    tmp_path: Path, backend_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The migration of docs/scale.md on a shared catalog: A named its root first, then B names its own
    old root of the same share; B's rows of the photos A already holds go, one root is left."""
    a, b = tmp_path / "mnt" / "photos", tmp_path / "Volumes" / "photos"
    make_photo_tree(a, 6, seed=3)
    linked_tree(a, b)
    (b / "only-on-b").mkdir()
    make_photo_tree(tmp_path / "extra", 1, seed=4)
    (extra,) = [p for p in (tmp_path / "extra").rglob("*") if p.is_file()]
    os.link(extra, b / "only-on-b" / extra.name)  # a file A has not indexed yet
    assert cli("index", str(a))["encoded"] == 6  # machine A, before names
    assert cli("index", str(b))["encoded"] == 1  # machine B, before names: the same contents
    monkeypatch.setenv("PHOTOINDEX_CATALOG_ROOTS", f"nas={a}")
    assert cli("index", str(a))["missing"] == 0
    named = sql(load_config(), "SELECT id, path FROM photos WHERE path LIKE 'nas:%' ORDER BY id")
    monkeypatch.setenv("PHOTOINDEX_CATALOG_ROOTS", f"nas={b}")
    report = cli("index", str(b))
    assert report["added"] == report["missing"] == report["encoded"] == 0 and report["unchanged"] == 7, report
    config = load_config()
    assert sql(config, "SELECT path, name FROM roots") == [("nas:", "nas")]
    rows = sql(config, "SELECT id, path FROM photos ORDER BY id")
    assert rows[:6] == named  # A's rows kept, ids and all
    assert [p for _, p in rows[6:]] == [f"nas:/only-on-b/{extra.name}"]
    assert sql(config, "SELECT count(*), count(DISTINCT content_hash) FROM vectors") == [(7, 7)]
    hits = cli("search", "red", "-n", "50")
    assert hits and all(Path(h["path"]).is_relative_to(b) for h in hits)


@pytest.mark.parametrize("shape", ["b-holds-a", "a-holds-b"])
def test_a_second_machines_old_root_merges_into_an_overlapping_named_root(
    tmp_path: Path, config: Config, monkeypatch: pytest.MonkeyPatch, shape: str
) -> None:
    """A named only a folder of the share (`nas:/2024`) while B's old root is the whole share, or the other
    way round: either way one root is left, holding each photo once."""
    a, b = tmp_path / "mnt" / "photos", tmp_path / "Volumes" / "photos"
    make_photo_tree(a / "2024", 3, seed=3)
    make_photo_tree(a / "2025", 2, seed=4)
    linked_tree(a, b)
    if shape == "b-holds-a":
        monkeypatch.setenv("PHOTOINDEX_CATALOG_ROOTS", f"nas={a}")
        assert cli("index", str(a / "2024"))["encoded"] == 3  # A names one folder: nas:/2024
        monkeypatch.delenv("PHOTOINDEX_CATALOG_ROOTS")
        assert cli("index", str(b))["encoded"] == 2  # B, before names: the whole share by its path
    else:
        assert cli("index", str(b / "2024"))["encoded"] == 3  # B, before names: one folder by its path
        monkeypatch.setenv("PHOTOINDEX_CATALOG_ROOTS", f"nas={a}")
        assert cli("index", str(a))["encoded"] == 2  # A names the whole share: nas:
    monkeypatch.setenv("PHOTOINDEX_CATALOG_ROOTS", f"nas={b}")
    report = cli("reindex")
    assert report["encoded"] == report["missing"] == 0 and report["unchanged"] == 5, report
    assert sql(config, "SELECT path, name FROM roots") == [("nas:", "nas")]
    assert sql(config, "SELECT count(*), count(DISTINCT path), count(DISTINCT content_hash) FROM photos") == [(5, 5, 5)]
    assert sql(config, "SELECT count(*) FROM photos WHERE path NOT LIKE 'nas:/%'") == [(0,)]


def test_indexing_a_folder_that_holds_a_mapped_mount_is_refused(
    tmp_path: Path, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    make_photo_tree(data / "photos", 3, seed=5)
    monkeypatch.setenv("PHOTOINDEX_CATALOG_ROOTS", f"nas={data / 'photos'}")
    assert cli("index", str(data / "photos"))["encoded"] == 3
    result = runner.invoke(app, ["index", str(data), "--json"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert f"{data} holds {data / 'photos'}, the mount of root nas" in result.output
    assert sql(config, "SELECT path FROM roots") == [("nas:",)]
    assert sql(config, "SELECT count(*) FROM photos") == [(3,)]


def test_respelling_a_root_is_one_update_of_its_photos(tmp_path: Path, config: Config) -> None:
    from sqlalchemy import event

    from photoindex.catalog import writes as catalog
    from photoindex.library import open_library

    root = tmp_path / "Photos"
    make_photo_tree(root, N, seed=5)
    first = sorted(p for p in root.rglob("*.jpg"))[0]
    os.link(first, os.fsencode(root) + b"/caf\xe9-latin1.jpg")  # a name that is not UTF-8: bytes kept
    assert cli("index", str(root))["added"] == N + 1
    statements: list[str] = []
    with open_library(load_config()) as lib:
        event.listen(lib.db.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        with lib.db.write() as s:
            (registered,) = catalog.list_roots(s)
            assert catalog.respell_root(s, registered, "nas:") == N + 1
    updates = [st for st in statements if st.lstrip().upper().startswith("UPDATE PHOTOS")]
    assert len(updates) == 1, updates
    assert sql(config, "SELECT count(*) FROM photos WHERE path LIKE 'nas:/%'") == [(N + 1,)]
    assert (os.fsdecode(b"nas:/caf\xe9-latin1.jpg"),) in sql(config, "SELECT path FROM photos")


# ---------------------------------------------------------------- nested mounts and the web page


def test_nested_mounts_are_a_config_error_before_anything_is_stored(
    tmp_path: Path, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = tmp_path / "p"
    make_photo_tree(p, 4, seed=5)
    sub = sorted(x for x in p.iterdir() if x.is_dir())[0]
    monkeypatch.setenv("PHOTOINDEX_CATALOG_ROOTS", f"nas={p},inner={sub}")
    result = runner.invoke(app, ["index", str(p), "--json"])
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit)
    assert "[catalog] roots" in result.output and "PHOTOINDEX_CATALOG_ROOTS" in result.output
    assert f"inner={sub}" in result.output and "overlap" in result.output
    assert not config.db_path.exists() or sql(config, "SELECT count(*) FROM photos") == [(0,)]


def test_the_page_refuses_a_photo_of_a_root_not_mapped_on_this_machine(
    tmp_path: Path, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    from photoindex.library import open_library
    from photoindex.web.service import NotFound, WebService

    root = tmp_path / "Photos"
    make_photo_tree(root, 2, seed=5)
    monkeypatch.setenv("PHOTOINDEX_CATALOG_ROOTS", f"nas={root}")
    assert cli("index", str(root))["encoded"] == 2
    (photo_id,) = sql(config, "SELECT min(id) FROM photos")[0]
    monkeypatch.delenv("PHOTOINDEX_CATALOG_ROOTS")  # another machine: the name is not mapped here
    monkeypatch.chdir(root.parent)
    os.symlink(root, root.parent / "nas:")  # a relative `nas:/...` would open this: it must not be tried
    with open_library(load_config()) as lib:
        service = WebService(lib)
        assert service.photo_json(photo_id)["path"].startswith("nas:/")  # the metadata is still shown
        for serve in (service.original, service.view):
            with pytest.raises(NotFound) as caught:
                serve(photo_id)
            assert "root nas" in caught.value.message and "not mapped on this machine" in caught.value.message
            assert "[catalog] roots" in (caught.value.hint or "")
