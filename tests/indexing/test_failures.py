"""Failed photos are tried again when photoindex can read more (docs/indexing.md, "Failures").

A failure for want of a decoder is retried once the decoder is there; one by a decode timeout or a
crashed worker (often the machine's fault, not the photo's) by the next few runs; any other waits
for the file to change. Real worker processes, real CLI, a real HEIC file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import cli, sql

from photoindex.config import Config
from photoindex.indexing.indexer import RETRY_LIMIT
from photoindex.photos.decodepool import DecodePool
from photoindex.testing import COLOURS
from photoindex.testing.photos import make_photo, make_photo_tree


def crash_on(monkeypatch: pytest.MonkeyPatch, path: Path) -> None:
    """Every decode pool's worker dies on `path`, as a buggy decoder or the memory limit would kill it."""
    real = DecodePool.__init__

    def init(self: DecodePool, *args: object, **kwargs: object) -> None:
        real(self, *args, **kwargs)  # type: ignore[arg-type]
        self._crash_on = str(path)

    monkeypatch.setattr(DecodePool, "__init__", init)


def test_a_photo_whose_worker_crashed_is_retried_by_the_next_run(
    tmp_path: Path, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = make_photo_tree(tmp_path / "Photos", 4, seed=9)
    victim = sorted(tree)[0]
    with monkeypatch.context() as patch:
        crash_on(patch, victim)
        first = cli("index", str(tmp_path / "Photos"))
    assert first["failed"] == 1 and first["failures"][0]["reason"] == "crashed"
    assert sql(config, "SELECT failure_kind, failure_attempts FROM photos WHERE status = 'failed'") == [("crashed", 1)]

    again = cli("reindex")  # the file did not change, the worker does not crash any more
    assert again["retried"] == 1 and again["failed"] == 0 and again["unchanged"] == 3
    assert sql(config, "SELECT count(*) FROM photos WHERE status = 'indexed'") == [(4,)]
    assert sql(config, "SELECT failure_kind, failure_attempts FROM photos WHERE path = ?", str(victim)) == [(None, 0)]


def test_retries_of_a_photo_that_keeps_crashing_its_worker_are_bounded(
    tmp_path: Path, config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = make_photo_tree(tmp_path / "Photos", 3, seed=4)
    victim = sorted(tree)[0]
    crash_on(monkeypatch, victim)
    cli("index", str(tmp_path / "Photos"))
    for attempt in range(2, RETRY_LIMIT + 1):
        report = cli("reindex")
        assert report["retried"] == 1 and report["failed"] == 1
        assert report["failures"] == []  # the same failure is reported once
        assert sql(config, "SELECT failure_attempts FROM photos WHERE status = 'failed'") == [(attempt,)]
    settled = cli("reindex")
    assert settled["retried"] == 0 and settled["failed"] == 0 and settled["unchanged"] == 3
    victim.write_bytes(victim.read_bytes() + b"\0")  # a changed file is always tried again
    assert cli("reindex")["failed"] == 1
    assert sql(config, "SELECT failure_attempts FROM photos WHERE status = 'failed'") == [(1,)]


def run_cli(env: dict[str, str], *args: str) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", "photoindex", *args, "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.mark.slow
def test_a_heic_photo_failed_without_its_decoder_is_indexed_once_the_decoder_is_installed(
    tmp_path: Path, config: Config, home_env: dict[str, str]
) -> None:
    pytest.importorskip("pillow_heif")
    root = tmp_path / "Photos"
    make_photo(root / "a.jpg", COLOURS["red"], seed=1)
    make_photo(root / "IMG_0001.HEIC", COLOURS["blue"], seed=2)
    # pillow-heif "not installed": a package of that name that cannot be imported, first on the path.
    hidden = tmp_path / "no-heif"
    (hidden / "pillow_heif").mkdir(parents=True)
    (hidden / "pillow_heif" / "__init__.py").write_text("raise ImportError('pillow-heif is not installed')\n")
    env = {**os.environ, **home_env}
    without = run_cli({**env, "PYTHONPATH": str(hidden)}, "index", str(root))
    assert without["failed"] == 1 and without["failures"][0]["reason"] == "missing-decoder"  # type: ignore[index]
    ((kind, decoders),) = sql(config, "SELECT failure_kind, failure_decoders FROM photos WHERE status = 'failed'")
    assert kind == "missing-decoder" and "JPEG" in decoders.split(",") and "HEIF" not in decoders.split(",")
    assert run_cli({**env, "PYTHONPATH": str(hidden)}, "reindex")["retried"] == 0  # still no decoder: left alone

    with_decoder = run_cli(env, "reindex")
    assert with_decoder["retried"] == 1 and with_decoder["failed"] == 0 and with_decoder["encoded"] == 1
    assert sql(config, "SELECT status FROM photos ORDER BY path") == [("indexed",), ("indexed",)]
