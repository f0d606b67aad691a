"""`photoindex search` served by the daemon before the Typer app is built (photoindex/cli/served.py).

The daemon side is the real `QueryServer` on a real library (toy model, real photos, real SQLite
and FAISS) answering on its socket in this process; the CLI runs as a subprocess, as users run it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import cli

from photoindex.cli.served import parse
from photoindex.config import Config
from photoindex.search.client import serve_request
from photoindex.search.protocol import SearchRequest, parse_not_encoded, reply_hits
from photoindex.search.server import QueryServer
from photoindex.testing.photos import make_photo

# What a served search must not import: the Typer app, the catalog's and the search's libraries.
NOT_ON_THE_SERVED_PATH = (
    "typer", "click", "rich", "numpy", "sqlite3", "sqlalchemy", "onnxruntime", "faiss", "PIL", "photoindex.cli.app",
)  # fmt: skip


def run_cli(env: dict[str, str], *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """`python -X importtime -m photoindex ARGS`: the finished process and the modules it imported."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "photoindex", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    proc.stderr = "\n".join(line for line in proc.stderr.splitlines() if not line.startswith("import time:"))
    return proc, imported


def heavy(imported: set[str]) -> set[str]:
    return {m for m in imported if m in NOT_ON_THE_SERVED_PATH or m.split(".")[0] in NOT_ON_THE_SERVED_PATH}


@pytest.fixture
def served_library(tmp_path: Path, config: Config) -> Iterator[QueryServer]:
    """A library of red, green and blue photos, and the real query server answering on its socket."""
    from photoindex.library import open_library

    root = tmp_path / "photos"
    for i, colour in enumerate([(220, 20, 20)] * 3 + [(20, 200, 20)] * 2 + [(20, 20, 220)] * 2):
        make_photo(root / f"img_{i}.jpg", colour, size=(64, 48), seed=i)
    cli("index", str(root))
    with open_library(config) as lib:
        handle = lib.open_index()
        server = QueryServer(lib, work_lock=threading.Lock(), current_index=lambda: handle, open_index=lambda: handle)
        assert server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.mark.slow
def test_a_served_search_prints_what_the_full_command_prints_and_imports_nothing_heavy(
    home_env: dict[str, str], served_library: QueryServer
) -> None:
    local = {**home_env, "PHOTOINDEX_SEARCH_USE_DAEMON": "0"}
    nothing = ("red", "--camera", "no such camera")  # no hits: the catalog says why, as in the full command
    for args in (("red", "--json"), ("green", "-n", "1", "-f"), ("blue", "-n", "2", "--sort", "date"), nothing):
        before = served_library.served
        mine, imported = run_cli(home_env, "search", *args)
        assert mine.returncode == 0, mine.stderr
        assert served_library.served == before + 1  # the daemon answered, once
        assert args == nothing or not heavy(imported), sorted(heavy(imported))
        theirs, _ = run_cli(local, "search", *args)
        assert theirs.returncode == 0, theirs.stderr
        assert (mine.stdout, mine.stderr) == (theirs.stdout, theirs.stderr)
        assert mine.stdout or "no matching photos: " in mine.stderr
    red = json.loads(run_cli(home_env, "search", "red", "--json", "-n", "3")[0].stdout)
    assert {Path(h["path"]).name for h in red} == {"img_0.jpg", "img_1.jpg", "img_2.jpg"}


def test_the_served_path_imports_only_what_it_needs(home_env: dict[str, str], served_library: QueryServer) -> None:
    # The whole command is the cost of a served search: beside the standard library's socket and
    # json, only the client's own modules (render for the output).
    proc, imported = run_cli(home_env, "search", "red", "-n", "2")
    assert proc.returncode == 0 and proc.stdout.count("\n") == 2, proc.stderr
    ours = {m for m in imported if m.startswith("photoindex")}
    assert ours <= {"photoindex", "photoindex.cli", "photoindex.cli.served", "photoindex.cli.render",
                    "photoindex.home", "photoindex.lazy", "photoindex.search", "photoindex.search.wire"}, sorted(ours)
    assert not imported & {"typing", "logging", "dataclasses", "pathlib", "tomllib"}, sorted(
        imported & {"typing", "logging", "dataclasses", "pathlib", "tomllib"})


def test_the_callers_configuration_and_folder_are_the_daemons_rule(
    home_env: dict[str, str], served_library: QueryServer, tmp_path: Path
) -> None:
    local = {**home_env, "PHOTOINDEX_SEARCH_USE_DAEMON": "0"}
    # The caller's defaults, not the daemon's: its [search] limit.
    before = served_library.served
    two = {**home_env, "PHOTOINDEX_SEARCH_LIMIT": "2"}
    mine, _ = run_cli(two, "search", "red")
    assert mine.stdout.count("\n") == 2 and served_library.served == before + 1
    # A relative --folder is the caller's, as the full command reads it.
    (tmp_path / "elsewhere").mkdir()
    for cwd, expected in ((tmp_path, 5), (tmp_path / "elsewhere", 0)):
        before = served_library.served
        args = [sys.executable, "-m", "photoindex", "search", "red", "--folder", "photos", "-n", "5", "-f"]
        mine_run = subprocess.run(args, env={**os.environ, **home_env}, cwd=cwd, capture_output=True, text=True)
        theirs = subprocess.run(args, env={**os.environ, **local}, cwd=cwd, capture_output=True, text=True)
        assert (mine_run.stdout, mine_run.stderr) == (theirs.stdout, theirs.stderr)
        assert len(mine_run.stdout.splitlines()) == expected and served_library.served == before + 1
    # A caller who turns the daemon off, or whose configuration does not load, is declined: the
    # search runs in the caller's process (still without the Typer app), as the full command
    # (`--limit=1`, a form only it reads) would run it, and says what it must.
    before = served_library.served
    here, imported = run_cli(local, "search", "red", "-n", "1")
    full, full_imported = run_cli(local, "search", "red", "--limit=1")
    assert here.returncode == 0 and (here.stdout, here.stderr) == (full.stdout, full.stderr)
    assert "photoindex.cli.app" not in imported and "photoindex.cli.app" in full_imported
    bad = {**home_env, "PHOTOINDEX_SEARCH_LIMMIT": "3"}
    here, _ = run_cli(bad, "search", "red")
    full, _ = run_cli(bad, "search", "red", "--limit=20")
    assert here.returncode == full.returncode == 1 and (here.stdout, here.stderr) == (full.stdout, full.stderr)
    assert "PHOTOINDEX_SEARCH_LIMMIT" in here.stderr and served_library.served == before


def test_a_served_search_into_a_closed_pipe_ends_quietly_as_the_full_command_does(
    home_env: dict[str, str], served_library: QueryServer
) -> None:
    # `photoindex search ... | head -1`: the reader is gone before the hits are written.
    before = served_library.served
    proc = subprocess.Popen([sys.executable, "-m", "photoindex", "search", "red", "-n", "7", "-f"],
                            env={**os.environ, **home_env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 1, err
    assert served_library.served == before + 1  # the daemon answered: this was the served path
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_options_the_served_path_does_not_take_run_the_full_command(
    home_env: dict[str, str], served_library: QueryServer
) -> None:
    # --words and --help are the full command's; an unknown option is its usage error (exit 2).
    proc, imported = run_cli(home_env, "search", "red", "--help")
    assert proc.returncode == 0 and "--words" in proc.stdout and "typer" in imported
    proc, _ = run_cli(home_env, "search", "red", "--bogus")
    assert proc.returncode == 2 and "--bogus" in proc.stderr
    proc, _ = run_cli(home_env, "search", "red", "--limit", "0")
    assert proc.returncode == 2  # click's range check, as always
    # A bad filter is the full command's error, with its hint, whoever would have answered.
    proc, _ = run_cli(home_env, "search", "red", "--after", "2024-13")
    assert proc.returncode == 1 and "no such month" in proc.stderr and "hint: " in proc.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["red"], {"text": "red", "types": []}),
        (["red", "-n", "3", "--json"], {"text": "red", "types": [], "limit": 3, "as_json": True}),
        (["--type", "jpeg", "a b", "--type", "png", "-f"], {"text": "a b", "types": ["jpeg", "png"], "paths_only": True}),  # noqa: E501
        (["red", "--min-score", "0.25", "--offset", "4"], {"text": "red", "types": [], "min_score": 0.25, "offset": 4}),
    ],
)
def test_parse_takes_the_options_the_daemon_answers(args: list[str], expected: dict[str, object]) -> None:
    assert parse(args) == expected


@pytest.mark.parametrize(
    "args",
    [
        [],  # nothing to search for: the full command says so
        ["  "],
        ["red", "green"],  # two texts: the full command's usage error
        ["red", "--image", "a.jpg"],
        ["red", "--words", "x"],
        ["red", "--sheet", "s.jpg"],
        ["red", "-p"],
        ["red", "--help"],
        ["red", "--limit=3"],
        ["red", "--limit"],
        ["red", "--limit", "0"],
        ["red", "--limit", "many"],
        ["red", "--offset", "-1"],
        ["red", "--min-score", "high"],
        ["red", "-n", "2", "-n", "3"],
        ["--", "-red"],
    ],
)
def test_parse_leaves_everything_else_to_the_full_command(args: list[str]) -> None:
    assert parse(args) is None


# ---------------------------------------------------------------- the daemon's count of photos not encoded


def canned(fake_daemon: Callable[[bytes | None], Path], reply: dict[str, object]) -> dict[str, str]:
    """The environment of a CLI whose home's daemon answers every request with `reply`."""
    return {"PHOTOINDEX_HOME": str(fake_daemon(json.dumps(reply).encode() + b"\n"))}


def test_the_warning_about_photos_not_encoded_comes_from_the_daemons_count(
    home_env: dict[str, str], fake_daemon: Callable[[bytes | None], Path]
) -> None:
    hits = [{"path": "/photos/a.jpg", "score": 0.5, "taken_at": "2024-01-02T03:04:05+00:00"}]
    env = {**home_env, **canned(fake_daemon, {"hits": hits, "not_encoded": {"model": "toy", "photos": 3}})}
    proc, imported = run_cli(env, "search", "red")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "0.500\t/photos/a.jpg\t2024-01-02T03:04:05+00:00\n"
    assert "warning: 3 photos not encoded for model toy yet" in proc.stderr
    assert "hint: run `photoindex reindex`" in proc.stderr
    assert not heavy(imported), sorted(heavy(imported))
    # No catalog was opened or made: the count came with the answer.
    assert not (Path(env["PHOTOINDEX_HOME"]) / "photoindex.db").exists()


def test_an_answer_without_the_count_is_not_trusted_the_search_runs_here(
    home_env: dict[str, str], fake_daemon: Callable[[bytes | None], Path]
) -> None:
    # A daemon from before this protocol: its answer is not used, the catalog here answers (empty).
    env = {**home_env, **canned(fake_daemon, {"hits": [{"path": "/photos/a.jpg", "score": 0.5}]})}
    proc, imported = run_cli(env, "search", "red")
    assert proc.returncode == 0, proc.stderr
    assert "/photos/a.jpg" not in proc.stdout and "no matching photos: the library is empty" in proc.stderr
    assert "photoindex.cli.app" not in imported


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--folder", ""], "error: --folder: empty"),  # not the current folder
        (["--limit", "20000"], "error: --limit 20000: at most 10000 results at a time"),
        (["--after", "2024-13"], "error: --after '2024-13': no such month"),
    ],
)
def test_values_the_full_command_refuses_are_refused_by_the_daemon_in_its_words(
    home_env: dict[str, str], served_library: QueryServer, args: list[str], error: str
) -> None:
    local, _ = run_cli({**home_env, "PHOTOINDEX_SEARCH_USE_DAEMON": "0"}, "search", "red", *args)
    mine, imported = run_cli(home_env, "search", "red", *args)
    assert mine.returncode == local.returncode == 1 and mine.stderr.startswith(error), mine.stderr
    assert (mine.stdout, mine.stderr) == (local.stdout, local.stderr)
    assert "photoindex.cli.app" not in imported  # the daemon's answer, not the full command's


def test_the_daemons_error_is_printed_with_its_hint_and_exit_code(
    home_env: dict[str, str], fake_daemon: Callable[[bytes | None], Path]
) -> None:
    env = {**home_env, **canned(fake_daemon, {"error": "no photo at /x.jpg", "hint": "check the path"})}
    proc, imported = run_cli(env, "search", "red")
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == ["error: no photo at /x.jpg", "hint: check the path"]
    assert not heavy(imported)


def test_the_count_travels_in_the_reply_and_a_bad_one_is_ignored(config: Config) -> None:
    assert parse_not_encoded(reply_hits([], ("toy", 2))) == ("toy", 2)
    assert parse_not_encoded(reply_hits([])) is None
    for bad in ({"model": 1, "photos": 2}, {"model": "m", "photos": -1}, {"model": "m", "photos": True}, "3"):
        assert parse_not_encoded({"hits": [], "not_encoded": bad}) is None
    # No daemon: no answer.
    assert serve_request(config.home, SearchRequest.build(text="red"), "m") is None


# ---------------------------------------------------------------- the review's cases


def test_use_daemon_off_in_the_callers_variable_or_file_never_asks_the_daemon(
    home_env: dict[str, str], fake_daemon: Callable[[bytes | None], Path], tmp_path: Path
) -> None:
    # A daemon that never answers (stopped, stuck): the caller who turned it off must not wait for it.
    env = {**home_env, "PHOTOINDEX_HOME": str(fake_daemon(None))}
    proc, _ = run_cli({**env, "PHOTOINDEX_SEARCH_USE_DAEMON": "off"}, "search", "red")
    assert proc.returncode == 0 and "no matching photos: the library is empty" in proc.stderr, proc.stderr
    config = tmp_path / "off.toml"
    config.write_text("[search]\nuse_daemon = false\n")
    proc, _ = run_cli({**env, "PHOTOINDEX_CONFIG": str(config)}, "search", "red")
    assert proc.returncode == 0 and "no matching photos: the library is empty" in proc.stderr, proc.stderr


def test_a_relative_config_of_another_folder_than_the_daemons_is_read_by_the_caller(
    home_env: dict[str, str], served_library: QueryServer, tmp_path: Path
) -> None:
    caller = tmp_path / "caller"
    caller.mkdir()
    (caller / "cfg.toml").write_text("[search]\nlimit = 2\n")
    (tmp_path / "gone").mkdir()
    before = served_library.served
    args = [sys.executable, "-m", "photoindex", "search", "red", "-f"]
    env = {**os.environ, **home_env, "PHOTOINDEX_CONFIG": "cfg.toml"}
    proc = subprocess.run(args, env=env, cwd=caller, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and len(proc.stdout.splitlines()) == 2, proc.stderr
    assert served_library.served == before  # declined: the daemon would have read its own folder's file
    # A caller whose folder was deleted meanwhile still gets its answer.
    gone = subprocess.run([*args[:-1], "-n", "1"], env={**os.environ, **home_env}, cwd=tmp_path / "gone",
                          capture_output=True, text=True, timeout=120,
                          preexec_fn=lambda: os.rmdir(tmp_path / "gone"))
    assert gone.returncode == 0 and gone.stdout.count("img_") == 1, gone.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["red", "--folder", "~nosuchuser/x"],  # no such user: a folder like any other, no traceback
        ["red", "--place", "\udcff"],  # not text: the filter's own error
        ["red", "--after", "nope"],  # with a broken configuration too: the filter's error comes first
    ],
)
def test_odd_values_get_the_full_commands_answer_whoever_answers(
    home_env: dict[str, str], served_library: QueryServer, args: list[str]
) -> None:
    env = {**home_env, "PHOTOINDEX_SEARCH_LIMMIT": "1"} if "nope" in args else home_env
    local = {**env, "PHOTOINDEX_SEARCH_USE_DAEMON": "0"}
    for asker in (env, local):
        mine, _ = run_cli(asker, "search", *args)
        full, _ = run_cli(asker, "search", *args, "--limit=20")
        assert (mine.returncode, mine.stdout, mine.stderr) == (full.returncode, full.stdout, full.stderr)
        assert "Traceback" not in mine.stderr and mine.stderr, mine.stderr
