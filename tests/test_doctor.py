"""`photoindex doctor`: what runs where and why, in words and as JSON, on this machine (no NPU)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from helpers import cli
from typer.testing import CliRunner

from photoindex import doctor
from photoindex.cli.app import app
from photoindex.config import Config, load_config
from photoindex.testing import COLOURS
from photoindex.testing.photos import make_photo

STANDIN = Path(__file__).parent / "axengine_standin"
# Every test starts with axengine not imported (this machine has none) and no stand-in switches.
pytestmark = pytest.mark.usefixtures("no_axengine")


def _config(home: Path, bundle: Path | str, **runtime: str) -> Config:
    env = {"PHOTOINDEX_HOME": str(home), "PHOTOINDEX_MODEL_BUNDLE": str(bundle)}
    env.update({f"PHOTOINDEX_RUNTIME_{k.upper()}": v for k, v in runtime.items()})
    return load_config(environ=env)


def test_doctor_on_this_machine_says_the_npu_is_not_available_and_why(
    npu_bundle: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    report = doctor.diagnose(_config(home, npu_bundle))
    assert report.ok, report.lines()
    lines = report.lines()
    text = "\n".join(lines)
    npu_line = (
        "image encoder ([runtime] image = \"auto\"): NPU not available (No module named 'axengine'): "
        "ONNX Runtime on the CPU will be used (image_encoder.onnx)"
    )
    assert npu_line in lines
    assert "axengine (NPU runtime): not installed (No module named 'axengine')" in lines
    assert [(e.encoder, e.device) for e in report.encoders] == [("image", "cpu"), ("text", "cpu")]
    assert "CPUExecutionProvider" in report.onnxruntime_providers
    assert {p.name for p in report.packages} >= {"onnxruntime", "faiss", "numpy", "Pillow", "SQLAlchemy"}
    assert all(p.version for p in report.packages)
    assert report.bundle is not None and all(f.ok and f.present for f in report.bundle.files)
    assert "image_encoder.axmodel" in text and lines[-1] == "ok"
    assert not home.exists()  # doctor creates no state


def test_missing_model_files_are_a_problem_with_a_hint(npu_bundle: Path, tmp_path: Path) -> None:
    partial = tmp_path / "partial"
    partial.mkdir()
    for f in npu_bundle.iterdir():
        if f.name != "text_encoder.onnx":
            (partial / f.name).write_bytes(f.read_bytes())
    report = doctor.diagnose(_config(tmp_path / "home", partial))
    assert not report.ok
    (problem,) = [f for f in report.findings if f.level == "problem"]
    assert problem.message == "model bundle toy is missing text_encoder.onnx"
    assert problem.hint is not None and f"place text_encoder.onnx in {partial}" in problem.hint
    assert "PROBLEM  text_encoder.onnx [text] (missing)" in "\n".join(report.lines())


def test_a_forced_npu_that_cannot_work_is_a_problem(npu_bundle: Path, tmp_path: Path) -> None:
    report = doctor.diagnose(_config(tmp_path / "home", npu_bundle, image="npu"))
    assert not report.ok
    (problem,) = [f for f in report.findings if f.level == "problem"]
    assert "the NPU is not available: No module named 'axengine'" in problem.message
    assert problem.hint is not None and "pyaxengine GitHub releases" in problem.hint
    assert report.encoders[0].device is None and report.encoders[1].device == "cpu"


def test_with_the_npu_runtime_doctor_names_it(
    npu_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.syspath_prepend(str(STANDIN))
    report = doctor.diagnose(_config(tmp_path / "home", npu_bundle))
    assert report.ok
    assert report.encoders[0].device == "npu"
    assert (
        report.encoders[0].reason
        == "axengine imported and image_encoder.axmodel present: the NPU will be used"
    )
    assert report.axengine.endswith(", importable")
    assert "Available providers" not in capfd.readouterr().out


def test_a_broken_axengine_install_is_a_warning(
    npu_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(STANDIN))
    monkeypatch.setenv("AXENGINE_STANDIN_NO_DRIVER", "1")
    report = doctor.diagnose(_config(tmp_path / "home", npu_bundle))
    assert report.ok and report.axengine.startswith("installed but not importable (No providers found")
    assert any(
        f.level == "warning" and "axengine is installed but cannot be imported" in f.message
        for f in report.findings
    )


@pytest.mark.parametrize(
    ("version", "fstype", "warned"),
    [("3.51.2", "nfs4", True), ("3.51.2", "ext4", False), ("3.51.3", "nfs4", False), ("3.52.0", "cifs", False)],
)
def test_sqlite_before_3_51_3_is_a_warning_only_for_a_catalog_on_a_network_filesystem(
    version: str, fstype: str, warned: bool, npu_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11 item 10: the WAL warning only where it applies (two machines writing), with a hint to follow."""
    home = tmp_path / "home"
    mounts = tmp_path / "mounts"
    mounts.write_text(f"/dev/root / ext4 rw 0 0\nserver:/x {tmp_path} {fstype} rw 0 0\n")
    monkeypatch.setattr(doctor, "_MOUNTS", mounts)
    monkeypatch.setattr(doctor.sqlite3, "sqlite_version", version)
    report = doctor.diagnose(_config(home, npu_bundle))
    found = [f for f in report.findings if "WAL-reset bug" in f.message]
    assert report.sqlite_version == version and report.ok
    assert bool(found) is warned
    if found:
        assert found[0].level == "warning" and fstype in found[0].message
        assert found[0].hint and "PHOTOINDEX_HOME on a local disk" in found[0].hint


def _catalog_with_root(home: Path, root: Path) -> None:
    from photoindex.catalog import writes as catalog
    from photoindex.catalog.db import open_database

    db = open_database(home / "photoindex.db")
    try:
        with db.write() as s:
            catalog.add_root(s, root)
    finally:
        db.close()


def test_inotify_limits_against_the_folders_under_the_roots(
    npu_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, photos = tmp_path / "home", tmp_path / "photos"
    for folder in ("2023/01", "2023/02", "2024", ".thumbnails/x"):
        (photos / folder).mkdir(parents=True)
    _catalog_with_root(home, photos)
    limits = tmp_path / "proc"
    limits.mkdir()
    (limits / "max_user_watches").write_text("100\n")
    (limits / "max_user_instances").write_text("128\n")
    monkeypatch.setattr(doctor, "_INOTIFY", limits)
    report = doctor.diagnose(_config(home, npu_bundle))
    assert report.inotify == doctor.InotifyState(
        100, 128, roots=1, folders=5, counted_all=True
    )  # hidden skipped
    assert not [f for f in report.findings if "inotify" in f.message]
    assert "1 watched root(s) with 5 folder(s)" in "\n".join(report.lines())

    (limits / "max_user_watches").write_text("4\n")
    report = doctor.diagnose(_config(home, npu_bundle))
    assert report.ok and report.inotify is not None and not report.inotify.counted_all
    (warning,) = [f for f in report.findings if "max_user_watches" in f.message]
    assert warning.level == "warning" and "more than 4 folders" in warning.message
    assert warning.hint is not None and "sysctl" in warning.hint


def test_doctor_json_parses_and_stays_clean_with_the_npu_runtime(
    npu_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    env = {"PHOTOINDEX_HOME": str(tmp_path / "home"), "PHOTOINDEX_MODEL_BUNDLE": str(npu_bundle)}
    runner = CliRunner()
    result = runner.invoke(app, ["doctor", "--json"], env=env)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["encoders"][0]["device"] == "cpu"
    assert "NPU not available (No module named 'axengine')" in data["encoders"][0]["reason"]
    assert set(data) == {f.name for f in dataclasses.fields(doctor.DoctorReport)}
    # With pyaxengine (the stand-in) importable, its providers printout must not break the JSON.
    monkeypatch.syspath_prepend(str(STANDIN))
    capfd.readouterr()
    result = runner.invoke(app, ["doctor", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["encoders"][0]["device"] == "npu"
    assert "Available providers" not in result.stdout and "banner" not in capfd.readouterr().out


def test_doctor_exits_1_on_a_problem(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["doctor"],
        env={"PHOTOINDEX_HOME": str(tmp_path / "home"), "PHOTOINDEX_MODEL_BUNDLE": "clip-vit-b32"},
    )
    assert result.exit_code == 1
    assert "ONNX Runtime on the CPU will be used" in result.stdout
    assert (
        "problem: model bundle clip-vit-b32 is missing image_encoder.onnx, text_encoder.onnx" in result.stdout
    )


def test_doctor_tells_which_models_have_a_fast_copy(config: Config, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before the first load no copy is ready; after it the text model's is; with the cache off, none is kept."""
    from photoindex.doctor import diagnose
    from photoindex.library import open_library

    before = diagnose(config).model_cache
    assert before.directory == str(config.home / "cache" / "models")
    assert before.ready == {"image_encoder.onnx": False, "text_encoder.onnx": False}
    with open_library(config) as lib:
        lib.text_encoder()
    after = diagnose(config)
    assert after.model_cache.ready == {"image_encoder.onnx": False, "text_encoder.onnx": True}
    assert any("text_encoder.onnx ready" in line for line in after.lines())
    monkeypatch.setenv("PHOTOINDEX_RUNTIME_MODEL_CACHE", "off")
    off = diagnose(load_config())
    assert off.model_cache.directory is None and any("fast model copies: off" in line for line in off.lines())


# ---------------------------------------------------------------- fast model copies


def _own_bundle(toy_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the toy bundle (its files may be touched), used by the home."""
    bundle = tmp_path / "bundle"
    shutil.copytree(toy_bundle, bundle)
    monkeypatch.setenv("PHOTOINDEX_MODEL_BUNDLE", str(bundle))
    return bundle


def test_doctor_sees_a_copy_go_stale_and_creates_no_cache_folder(
    home_env: dict[str, str], toy_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Doctor creates no cache folder; after indexing both models' copies are ready; a model file rewritten
    (a new mtime) makes it "made at its first load" again, in the text and in `doctor --json`."""
    from photoindex.doctor import diagnose

    bundle = _own_bundle(toy_bundle, tmp_path, monkeypatch)
    cache = tmp_path / "model-cache"
    monkeypatch.setenv("PHOTOINDEX_RUNTIME_MODEL_CACHE", str(cache))
    cfg = load_config()
    assert diagnose(cfg).model_cache.ready == {"image_encoder.onnx": False, "text_encoder.onnx": False}
    assert not cache.exists()
    make_photo(tmp_path / "p" / "red.jpg", COLOURS["red"], (64, 48))
    assert cli("index", str(tmp_path / "p"))["encoded"] == 1
    # Both copies are made by indexing: the text model's too, so the first search after it is fast.
    assert diagnose(cfg).model_cache.ready == {"image_encoder.onnx": True, "text_encoder.onnx": True}
    image = bundle / "image_encoder.onnx"
    st = image.stat()
    os.utime(image, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    report = diagnose(cfg)
    assert report.model_cache.ready["image_encoder.onnx"] is False
    assert any("image_encoder.onnx made at its first load" in line for line in report.lines())
    result = CliRunner().invoke(app, ["doctor", "--json"])
    data = json.loads(result.stdout)
    assert data["model_cache"] == {"directory": str(cache), "ready": {"image_encoder.onnx": False,
                                                                       "text_encoder.onnx": True}}


def test_doctor_survives_an_onnxruntime_that_cannot_be_imported(
    config: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An onnxruntime that cannot be imported (a broken wheel): doctor still reports, with no ready copies."""
    from photoindex.doctor import diagnose

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now raises ImportError
    report = diagnose(config)
    assert report.onnxruntime_providers == []
    assert not any(report.model_cache.ready.values())
