"""Fast-loading model copies (photoindex.modelcache) through OrtSession, on the generated toy bundle.

Real ONNX Runtime writes and maps every copy; damage is done to real files on disk.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import needs_proc

from photoindex.config import Config, load_config
from photoindex.errors import ModelError
from photoindex.inference import modelcache
from photoindex.inference.sessions.ort import OrtSession
from photoindex.inference.tokenizers import load_tokenizer
from photoindex.library import open_library

IMAGE = "image_encoder.onnx"
TEXT = "text_encoder.onnx"


def feeds(session: OrtSession) -> dict[str, np.ndarray]:
    """A batch of 3 inputs that exercise the model: noisy pixels, or real token ids of colour phrases."""
    spec = session.inputs[0]
    if spec.name == "texts":
        ids = load_tokenizer("clip-bpe", 77)(["a red car", "something blue", "green grass"])
        return {"texts": np.asarray(ids, dtype=np.int32)}
    rng = np.random.default_rng(7)
    return {spec.name: rng.standard_normal((3, 3, 224, 224)).astype(np.float32)}


def run(session: OrtSession) -> list[np.ndarray]:
    return session.run(feeds(session))


def copies(cache: Path) -> list[Path]:
    """The copy folders in `cache` (temporaries excluded), by name."""
    return sorted(p for p in cache.iterdir() if p.is_dir() and not p.name.startswith(".tmp-"))


def temporaries(cache: Path) -> list[Path]:
    return sorted(cache.glob(".tmp-*"))


@pytest.fixture
def models(toy_bundle: Path, tmp_path: Path) -> Path:
    """A private copy of the toy bundle's two ONNX models (tests may replace or damage them)."""
    folder = tmp_path / "models"
    folder.mkdir()
    for name in (IMAGE, TEXT):
        shutil.copy2(toy_bundle / name, folder / name)
    return folder


@pytest.mark.parametrize("name", [IMAGE, TEXT])
def test_first_load_makes_the_copy_and_the_next_uses_it_with_identical_outputs(
    toy_bundle: Path, tmp_path: Path, name: str
) -> None:
    """The first session writes model.onnx + model.onnx.data + source.json; the second loads that copy
    without rewriting it, and both compute bit-for-bit what the original file computes."""
    source = toy_bundle / name
    cache = tmp_path / "cache"
    original = OrtSession(source)
    assert original.loaded_from is None

    first = OrtSession(source, cache_dir=cache)
    (folder,) = copies(cache)
    assert first.loaded_from == folder / modelcache.MODEL
    assert sorted(p.name for p in folder.iterdir()) == sorted([modelcache.MODEL, modelcache.DATA, modelcache.STAMP])
    # The weights really moved to the side file: the graph file is a small fraction of the source.
    data_size = (folder / modelcache.DATA).stat().st_size
    assert data_size > 0 and (folder / modelcache.MODEL).stat().st_size < source.stat().st_size // 4
    stamp = json.loads((folder / modelcache.STAMP).read_text())
    assert stamp["files"][modelcache.DATA][1] == data_size and stamp["identity"]["source"] == str(source.resolve())
    made = {p.name: p.stat().st_ino for p in folder.iterdir()}
    assert temporaries(cache) == []

    # Making a copy sweeps stale temporaries: this one survives only if the next load makes nothing.
    probe = cache / ".tmp-probe"
    probe.mkdir()
    os.utime(probe, (time.time() - 7200, time.time() - 7200))
    second = OrtSession(source, cache_dir=cache)
    assert second.loaded_from == folder / modelcache.MODEL
    assert probe.is_dir()
    assert {p.name: p.stat().st_ino for p in folder.iterdir()} == made  # used as is, not made again
    assert json.loads((folder / modelcache.STAMP).read_text()) == stamp
    assert second.inputs == original.inputs and second.outputs == original.outputs

    expected = run(original)
    for session in (first, second):
        got = run(session)
        assert len(got) == len(expected)
        assert all(np.array_equal(g, e) for g, e in zip(got, expected, strict=True))


def test_truncated_side_file_is_detected_and_the_copy_made_again(models: Path, tmp_path: Path) -> None:
    """A copy whose model.onnx.data lost bytes is not used: a fresh copy replaces it and gives the right outputs."""
    source, cache = models / IMAGE, tmp_path / "cache"
    expected = run(OrtSession(source))
    OrtSession(source, cache_dir=cache)
    (folder,) = copies(cache)
    data = folder / modelcache.DATA
    whole = data.read_bytes()
    with open(data, "r+b") as fh:
        fh.truncate(len(whole) // 2)

    session = OrtSession(source, cache_dir=cache)
    assert session.loaded_from == folder / modelcache.MODEL
    assert data.read_bytes() == whole  # replaced by a complete copy
    assert all(np.array_equal(g, e) for g, e in zip(run(session), expected, strict=True))
    assert copies(cache) == [folder] and temporaries(cache) == []


def test_side_file_rewritten_with_the_same_size_is_not_used(models: Path, tmp_path: Path) -> None:
    """Weights overwritten in place (same size, so only the file's identity tells) are not mapped: the copy
    is made again and the outputs are the original's."""
    source, cache = models / IMAGE, tmp_path / "cache"
    expected = run(OrtSession(source))
    OrtSession(source, cache_dir=cache)
    (folder,) = copies(cache)
    data = folder / modelcache.DATA
    whole = data.read_bytes()
    time.sleep(0.01)  # a new mtime even on coarse clocks
    data.write_bytes(bytes(len(whole)))

    session = OrtSession(source, cache_dir=cache)
    assert data.read_bytes() == whole
    assert all(np.array_equal(g, e) for g, e in zip(run(session), expected, strict=True))


def test_garbage_graph_file_is_refused_discarded_and_made_again_next_time(models: Path, tmp_path: Path) -> None:
    """A copy whose model.onnx ONNX Runtime cannot parse (damaged, its identity unchanged): the session
    loads the original instead, the copy is removed, and the next session makes a working copy again."""
    source, cache = models / TEXT, tmp_path / "cache"
    expected = run(OrtSession(source))
    OrtSession(source, cache_dir=cache)
    (folder,) = copies(cache)
    graph = folder / modelcache.MODEL
    with open(graph, "r+b") as fh:  # damaged in place ...
        fh.write(b"\xff" * graph.stat().st_size)
    # ... and its stamp made to agree (as bit rot would, which changes no metadata): only ONNX Runtime can tell.
    stamp = json.loads((folder / modelcache.STAMP).read_text())
    stamp["files"][modelcache.MODEL] = modelcache._file_identity(graph)
    (folder / modelcache.STAMP).write_text(json.dumps(stamp))

    fallback = OrtSession(source, cache_dir=cache)
    assert fallback.loaded_from is None
    assert not folder.exists()
    assert all(np.array_equal(g, e) for g, e in zip(run(fallback), expected, strict=True))

    again = OrtSession(source, cache_dir=cache)
    assert again.loaded_from == folder / modelcache.MODEL
    assert all(np.array_equal(g, e) for g, e in zip(run(again), expected, strict=True))


def test_replaced_source_gets_a_new_copy_and_its_old_copy_is_pruned(models: Path, tmp_path: Path) -> None:
    """`models fetch` renames a new file into place: the stale copy must never be loaded for it, the old copy of
    that file is pruned, and the copies of other files stay."""
    cache = tmp_path / "cache"
    target, other = models / "model.onnx", models / TEXT
    shutil.copy2(models / IMAGE, target)
    OrtSession(target, cache_dir=cache)
    OrtSession(other, cache_dir=cache)
    old_copies = copies(cache)
    assert len(old_copies) == 2
    (other_copy,) = [c for c in old_copies if c.name.startswith("text_encoder-")]

    fresh = models / "model.onnx.download"
    shutil.copy2(models / TEXT, fresh)  # different content: a text encoder now lives at `target`
    os.replace(fresh, target)

    session = OrtSession(target, cache_dir=cache)
    assert session.loaded_from is not None and session.loaded_from.parent not in old_copies
    assert [s.name for s in session.inputs] == ["texts"]  # the new file's graph, not the stale copy's
    expected = run(OrtSession(target))
    assert all(np.array_equal(g, e) for g, e in zip(run(session), expected, strict=True))
    assert copies(cache) == sorted([other_copy, session.loaded_from.parent])
    assert OrtSession(other, cache_dir=cache).loaded_from == other_copy / modelcache.MODEL


def test_unwritable_cache_folder_loads_the_original(toy_bundle: Path, tmp_path: Path) -> None:
    """A cache folder that cannot be created (its parent is a regular file) costs the copy, never the model."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    cache = blocker / "cache" / "models"
    session = OrtSession(toy_bundle / IMAGE, cache_dir=cache)
    assert session.loaded_from is None
    assert all(
        np.array_equal(g, e) for g, e in zip(run(session), run(OrtSession(toy_bundle / IMAGE)), strict=True)
    )
    assert blocker.read_text() == "not a folder\n"


def test_corrupt_source_model_is_a_model_error_and_leaves_no_copy(tmp_path: Path) -> None:
    """A source that is not ONNX still raises ModelError naming the file; no copy or temporary is left."""
    broken = tmp_path / "text_encoder.onnx"
    broken.write_bytes(b"<html>502 Bad Gateway</html>\n" * 20)
    cache = tmp_path / "cache"
    with pytest.raises(ModelError) as err:
        OrtSession(broken, cache_dir=cache)
    assert str(broken) in err.value.message
    assert not cache.exists() or list(cache.iterdir()) == []


def test_stale_temporaries_are_swept_and_fresh_ones_kept(toy_bundle: Path, tmp_path: Path) -> None:
    """A `.tmp-*` left by a crash more than an hour ago is removed when a copy is made; a recent one (another
    process may be writing it) is left alone."""
    cache = tmp_path / "cache"
    stale, fresh = cache / ".tmp-crashed", cache / ".tmp-in-progress"
    for folder in (stale, fresh):
        folder.mkdir(parents=True)
        (folder / modelcache.MODEL).write_bytes(b"half written")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    ten_minutes_ago = time.time() - 600
    os.utime(fresh, (ten_minutes_ago, ten_minutes_ago))

    stray = cache / ".tmp-stray-file"  # not made by photoindex, but in its folder all the same
    stray.write_bytes(b"x")
    os.utime(stray, (two_hours_ago, two_hours_ago))

    session = OrtSession(toy_bundle / IMAGE, cache_dir=cache)
    assert session.loaded_from is not None
    assert temporaries(cache) == [fresh]
    assert (fresh / modelcache.MODEL).read_bytes() == b"half written"


def race(source: Path, cache: Path) -> list[OrtSession]:
    """Two threads released together, each loading `source` through `cache`; their sessions (errors re-raised)."""
    barrier = threading.Barrier(2)
    sessions: list[OrtSession] = []
    errors: list[BaseException] = []

    def load() -> None:
        try:
            barrier.wait()
            sessions.append(OrtSession(source, cache_dir=cache))
        except BaseException as exc:  # noqa: BLE001 - handed back to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=load) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return sessions


def test_two_threads_making_the_same_copy_both_get_a_working_session(toy_bundle: Path, tmp_path: Path) -> None:
    """Two loads racing to make one copy: both load it, one folder results, no temporary is left."""
    source = toy_bundle / IMAGE
    expected = run(OrtSession(source))
    for attempt in range(3):  # a few rounds, each on an empty cache, to make the overlap likely
        cache = tmp_path / f"cache-{attempt}"
        sessions = race(source, cache)
        (folder,) = copies(cache)
        assert temporaries(cache) == []
        assert [s.loaded_from for s in sessions] == [folder / modelcache.MODEL] * 2
        for session in sessions:
            assert all(np.array_equal(g, e) for g, e in zip(run(session), expected, strict=True))


# --- configuration and the library ----------------------------------------------------------------


def test_default_config_puts_copies_under_the_home_and_the_library_makes_one(config: Config) -> None:
    """With no setting, copies go to $PHOTOINDEX_HOME/cache/models, and opening the text encoder makes one."""
    cache = config.home / "cache" / "models"
    assert config.runtime.model_cache_dir == cache
    with open_library(config) as lib:
        encoder = lib.text_encoder()
        session = lib.choices["text"].session
        assert isinstance(session, OrtSession)
        assert session.loaded_from is not None and session.loaded_from.parent.parent == cache
        vector = encoder.encode(["red"])[0]
    (folder,) = copies(cache)
    assert folder.name.startswith("text_encoder-") and session.loaded_from == folder / modelcache.MODEL
    assert np.isclose(np.linalg.norm(vector), 1.0, atol=1e-5)


def test_model_cache_off_makes_no_copy(home_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """PHOTOINDEX_RUNTIME_MODEL_CACHE=off: the library loads the bundle's own files and writes no cache."""
    monkeypatch.setenv("PHOTOINDEX_RUNTIME_MODEL_CACHE", "off")
    config = load_config()
    assert config.runtime.model_cache_dir is None
    with open_library(config) as lib:
        lib.text_encoder().encode(["blue"])
        lib.image_encoder()
        for which in ("text", "image"):
            session = lib.choices[which].session
            assert isinstance(session, OrtSession) and session.loaded_from is None
    assert not (config.home / "cache").exists()


def test_model_cache_set_to_a_folder_is_used(
    home_env: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An explicit folder in PHOTOINDEX_RUNTIME_MODEL_CACHE receives the copies (and the home's default does not)."""
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv("PHOTOINDEX_RUNTIME_MODEL_CACHE", str(elsewhere))
    config = load_config()
    assert config.runtime.model_cache_dir == elsewhere
    with open_library(config) as lib:
        lib.text_encoder()
    assert [c.name.split("-")[0] for c in copies(elsewhere)] == ["text_encoder"]
    assert not (config.home / "cache").exists()


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



@needs_proc
def test_a_fast_model_copy_is_fsynced_with_its_folder(toy_bundle: Path, tmp_path: Path, fsynced: list[str]) -> None:
    """modelcache.make: the copy's three files are flushed before the rename, the cache folder after it."""
    import onnxruntime

    from photoindex.inference import modelcache

    cache = tmp_path / "cache"
    made = modelcache.make(toy_bundle / "text_encoder.onnx", cache, onnxruntime.__version__)
    assert made is not None and made.is_file()
    names = [Path(p).name for p in fsynced[:3]]
    assert names == [modelcache.MODEL, modelcache.DATA, modelcache.STAMP]
    assert all(Path(p).parent.name.startswith(".tmp-") for p in fsynced[:3])
    assert fsynced[3:] == [str(cache)]
