"""The vector index: exact and IVF FAISS, the numpy equivalent of feature_matmul, atomic files, threads."""

from __future__ import annotations

import os
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
from helpers import needs_proc

from photoindex.errors import VectorIndexError
from photoindex.vectors import index as vindex
from photoindex.vectors.index import VectorIndex, recall_at_k
from photoindex.vectors.scoring import feature_matmul, l2_normalize

BACKENDS = ["faiss", "numpy"]


def clustered(n: int, dim: int = 64, *, centres: int = 200, seed: int = 0) -> np.ndarray:
    """Unit vectors around a few hundred centres sharing a common direction, like CLIP image embeddings.

    Uniform noise would be the pathological case for any approximate index, not a realistic one.
    """
    rng = np.random.default_rng(seed)
    common = l2_normalize(rng.standard_normal(dim))
    c = l2_normalize(l2_normalize(rng.standard_normal((centres, dim))) + 0.5 * common)
    noise = rng.standard_normal((n, dim)).astype(np.float32) / np.float32(np.sqrt(dim))
    return l2_normalize(c[rng.integers(0, centres, n)] + noise)


def ids_for(n: int, start: int = 1) -> np.ndarray:
    # Primary keys of the vectors table: increasing, with gaps left by deletions.
    return np.arange(start, start + 3 * n, 3, dtype=np.int64)


@pytest.fixture(autouse=True, params=["small-as-view", "faiss-flat"])
def flat_view(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test twice: small exact FAISS-backend indexes held as numpy views, and as FAISS indexes."""
    if request.param == "faiss-flat":
        monkeypatch.setattr(vindex, "FLAT_VIEW_MAX", 0)
    return str(request.param)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    vectors = clustered(2200)
    return ids_for(2000), vectors[:2000], vectors[2000:]


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_vector_finds_itself_first(
    backend: str, data: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    ids, vectors, _ = data
    index = VectorIndex.build(ids, vectors, backend=backend)  # type: ignore[arg-type]
    scores, found = index.search(vectors, 3)
    assert index.kind == "flat" and len(index) == 2000 and index.dim == 64
    assert found.shape == (2000, 3) and found.dtype == np.int64
    np.testing.assert_array_equal(found[:, 0], ids)
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
    assert (np.diff(scores, axis=1) <= 0).all()


def test_faiss_and_numpy_agree(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    ids, vectors, queries = data
    s_faiss, i_faiss = VectorIndex.build(ids, vectors).search(queries, 10)
    s_numpy, i_numpy = VectorIndex.build(ids, vectors, backend="numpy").search(queries, 10)
    np.testing.assert_allclose(s_faiss, s_numpy, atol=1e-5)
    # Ids must match wherever the score is not (nearly) tied with a neighbour.
    gap = np.minimum(
        np.abs(np.diff(s_numpy, axis=1, prepend=np.inf)), np.abs(np.diff(s_numpy, axis=1, append=-np.inf))
    )
    untied = gap > 1e-5
    assert untied.mean() > 0.9
    np.testing.assert_array_equal(i_faiss[untied], i_numpy[untied])


def test_numpy_ranks_as_feature_matmul(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    ids, vectors, queries = data
    # feature_matmul does not normalize text features, and the ranking must not care. (A norm well
    # above 1 would saturate its softmax at scale 100 and leave ties at 0 among the top 10.)
    raw_text = queries[:5] * 0.3
    _, found = VectorIndex.build(ids, vectors, backend="numpy").search(raw_text, 10)
    _, per_text = feature_matmul(vectors, raw_text)
    assert (np.sort(per_text, axis=1)[:, -11:] > 0).all()
    expected = ids[np.argsort(-per_text, axis=1, kind="stable")[:, :10]]
    np.testing.assert_array_equal(found, expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_allowed_restricts_results(backend: str, data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    ids, vectors, queries = data
    index = VectorIndex.build(ids, vectors, backend=backend)  # type: ignore[arg-type]
    rng = np.random.default_rng(1)
    rows = np.sort(rng.choice(len(ids), 60, replace=False))
    allowed = np.concatenate([ids[rows], [-5, 999_999]])  # ids not in the index are ignored
    scores, found = index.search(queries[:8], 10, allowed=allowed)
    exact = queries[:8] @ vectors[rows].T
    expected = ids[rows][np.argsort(-exact, axis=1)[:, :10]]
    np.testing.assert_array_equal(found, expected)
    np.testing.assert_allclose(scores, np.sort(exact, axis=1)[:, ::-1][:, :10], atol=1e-5)

    scores, found = index.search(queries[0], 10, allowed=ids[[4, 7, 9]])
    assert found.shape == (1, 3) and set(found[0]) == set(ids[[4, 7, 9]])
    assert index.search(queries[0], 10, allowed=np.array([-1]))[1].shape == (1, 0)


def test_exact_subset_and_id_selector_give_the_same_hits(data: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    # A small filtered set is scored from its own vectors; a larger one through FAISS's IDSelectorBatch.
    # Both are exact, so they must rank the same ids the same way, with the same scores.
    ids, vectors, queries = data
    subset = VectorIndex.build(ids, vectors)
    selector = VectorIndex.build(ids, vectors)
    subset.exact_subset_max, selector.exact_subset_max = 10_000, 0
    rng = np.random.default_rng(7)
    for size in (1, 25, 300, 1500):
        allowed = np.concatenate([rng.choice(ids, size, replace=False), [2, 999_999]])  # 2: not an id here
        for k in (1, 10, size + 5):
            s_sub, i_sub = subset.search(queries[:6], k, allowed=allowed)
            s_sel, i_sel = selector.search(queries[:6], k, allowed=allowed)
            assert i_sub.shape == (6, min(k, size))
            np.testing.assert_array_equal(i_sub, i_sel)
            np.testing.assert_allclose(s_sub, s_sel, atol=1e-5)
    # After a removal the gathered vectors are still the right ones.
    gone = ids[:500]
    subset.remove(gone)
    selector.remove(gone)
    allowed = ids[300:900]
    np.testing.assert_array_equal(
        subset.search(queries[:4], 20, allowed=allowed)[1], selector.search(queries[:4], 20, allowed=allowed)[1]
    )
    assert not np.isin(subset.search(queries[:4], 600, allowed=allowed)[1], gone).any()


@pytest.mark.parametrize("backend", BACKENDS)
def test_empty_index_and_k_edges(backend: str) -> None:
    index = VectorIndex.create(8, backend=backend)  # type: ignore[arg-type]
    scores, found = index.search(np.ones((2, 8)), 5)
    assert scores.shape == found.shape == (2, 0) and len(index) == 0 and index.ids().size == 0
    index.add(np.array([10, 11]), l2_normalize(np.eye(8)[:2]))
    assert index.search(np.eye(8)[1], 0)[1].shape == (1, 0)
    assert index.search(np.eye(8)[1], 5)[1].tolist() == [[11, 10]]
    with pytest.raises(ValueError):
        index.search(np.ones(7), 1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_add_rejects_duplicates_and_bad_vectors(backend: str) -> None:
    index = VectorIndex.create(4, backend=backend)  # type: ignore[arg-type]
    eye = np.eye(4, dtype=np.float32)
    index.add(np.array([1, 2]), eye[:2])
    with pytest.raises(ValueError, match="already"):
        index.add(np.array([3, 2]), eye[2:])
    with pytest.raises(ValueError, match="duplicate"):
        index.add(np.array([5, 5]), eye[2:])
    with pytest.raises(ValueError, match="unit length"):
        index.add(np.array([6]), 2 * eye[:1])
    with pytest.raises(ValueError, match="shape"):
        index.add(np.array([7]), np.ones((1, 3)) / np.sqrt(3))
    assert index.ids().tolist() == [1, 2]  # nothing half-added


@pytest.mark.parametrize("backend", BACKENDS)
def test_add_remove_save_load_round_trip(
    backend: str, tmp_path: Path, data: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    ids, vectors, queries = data
    index = VectorIndex.create(64, backend=backend)  # type: ignore[arg-type]
    for start in range(0, 2000, 500):  # batches as the indexer commits them
        index.add(ids[start : start + 500], vectors[start : start + 500])
    gone = ids[::7]
    assert index.remove(np.concatenate([gone, gone[:3], [-1]])) == len(gone)
    assert index.remove(gone) == 0
    index.meta = {"model_id": "clip-vit-b32", "generation": 42, "max_id": int(ids.max())}
    path = tmp_path / "index" / "clip.vindex"
    path.parent.mkdir()
    index.save(path)

    loaded = VectorIndex.load(path)
    kept = np.setdiff1d(ids, gone)
    np.testing.assert_array_equal(loaded.ids(), kept)
    assert loaded.meta == index.meta and loaded.backend == backend and loaded.kind == "flat"
    before, after = index.search(queries, 5), loaded.search(queries, 5)
    np.testing.assert_array_equal(before[1], after[1])
    np.testing.assert_allclose(before[0], after[0], atol=1e-6)  # a small FAISS file is searched by numpy
    assert not np.isin(after[1], gone).any()
    assert os.listdir(path.parent) == ["clip.vindex"]

    loaded.add(gone[:2], vectors[::7][:2])  # a loaded index stays writable
    assert loaded.search(vectors[0], 1)[1][0, 0] == ids[0]


def test_crash_before_replace_keeps_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: tuple[np.ndarray, np.ndarray, np.ndarray]
) -> None:
    ids, vectors, _ = data
    path = tmp_path / "clip.vindex"
    old = VectorIndex.build(ids[:100], vectors[:100], meta={"generation": 1})
    old.save(path)
    new = VectorIndex.build(ids, vectors, meta={"generation": 2})

    def crash(src: object, dst: object) -> None:
        raise OSError("simulated power loss before the rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated"):
        new.save(path)
    monkeypatch.undo()

    survivor = VectorIndex.load(path)
    assert survivor.meta == {"generation": 1}
    np.testing.assert_array_equal(survivor.ids(), ids[:100])
    assert os.listdir(tmp_path) == ["clip.vindex"]

    # A temp file left by a kill -9 is overwritten by the next save, never read as the index.
    (tmp_path / ".clip.vindex.tmp").write_bytes(b"half written")
    new.save(path)
    assert VectorIndex.load(path).meta == {"generation": 2}
    assert os.listdir(tmp_path) == ["clip.vindex"]


def _flip_bit(blob: bytes, at: int) -> bytes:
    return blob[:at] + bytes([blob[at] ^ 0x10]) + blob[at + 1 :]


DAMAGE = {
    "empty": lambda b: b"",
    "truncated": lambda b: b[: len(b) // 2],
    "last byte missing": lambda b: b[:-1],
    "garbage": lambda b: os.urandom(len(b)),
    "wrong magic": lambda b: b"NOTMAGIC" + b[8:],
    "payload only": lambda b: b[16 + struct.unpack_from("<I", b, 12)[0] :],  # e.g. a bare faiss file
    "bit flip in payload": lambda b: _flip_bit(b, len(b) // 2),
    "bit flip in header": lambda b: _flip_bit(b, b.index(b'"generation": 7') + 14),
    "trailing junk": lambda b: b + b"\0" * 16,
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_damaged_files_raise(backend: str, damage: str, tmp_path: Path) -> None:
    vectors = clustered(300, 16)
    path = tmp_path / "clip.vindex"
    VectorIndex.build(ids_for(300), vectors, backend=backend, meta={"generation": 7}).save(path)  # type: ignore[arg-type]
    path.write_bytes(DAMAGE[damage](path.read_bytes()))
    with pytest.raises(VectorIndexError) as info:
        VectorIndex.load(path)
    assert str(path) in info.value.message and info.value.hint


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(VectorIndexError, match="not found") as info:
        VectorIndex.load(tmp_path / "nope.vindex")
    assert "nope.vindex" in info.value.message


@pytest.mark.slow
def test_ivf_recall_filter_remove_and_reload(tmp_path: Path) -> None:
    vectors = clustered(20_200, 512, centres=300, seed=3)
    ids, base, queries = ids_for(20_000), vectors[:20_000], vectors[20_000:]
    index = VectorIndex.build(ids, base, approximate_threshold=2000, meta={"generation": 3})
    exact = VectorIndex.build(ids, base, backend="numpy")
    assert index.kind == "ivf" and len(index) == 20_000 and index.nprobe >= 1
    assert recall_at_k(index, exact, queries, 10) >= 0.95

    # A small filter must still give every eligible id, however few lists hold them.
    album = ids[[5, 500, 5000, 15000]]
    assert set(index.search(queries[0], 10, allowed=album)[1][0]) == set(album)

    gone = ids[:1000]
    assert index.remove(gone) == 1000
    _, found = index.search(base[:1000], 10)
    assert not np.isin(found, gone).any()
    index.save(tmp_path / "ivf.vindex")
    loaded = VectorIndex.load(tmp_path / "ivf.vindex")
    assert loaded.kind == "ivf" and loaded.nprobe == index.nprobe and loaded.meta == {"generation": 3}
    np.testing.assert_array_equal(loaded.ids(), ids[1000:])
    np.testing.assert_array_equal(loaded.search(queries, 10)[1], index.search(queries, 10)[1])


def test_add_crossing_threshold_switches_to_ivf() -> None:
    vectors = clustered(3500, 32, seed=4)
    ids = ids_for(3500)
    index = VectorIndex.create(32, approximate_threshold=3000)
    index.add(ids[:2000], vectors[:2000])
    assert index.kind == "flat"
    index.add(ids[2000:], vectors[2000:])
    assert index.kind == "ivf" and len(index) == 3500
    np.testing.assert_array_equal(index.ids(), ids)
    assert (index.search(vectors[::50], 1)[1][:, 0] == ids[::50]).mean() >= 0.95


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_searches_see_whole_batches(backend: str) -> None:
    batch, batches = 50, 40
    vectors = clustered(batch * batches, 32, seed=5)
    ids = ids_for(batch * batches)
    index = VectorIndex.create(32, backend=backend)  # type: ignore[arg-type]
    index.add(ids[:batch], vectors[:batch])
    done = threading.Event()
    errors: list[BaseException] = []
    seen: list[int] = []

    def searcher(seed: int) -> None:
        rng = np.random.default_rng(seed)
        try:
            while not done.is_set():
                # k above the total: k' is exactly the number of vectors this search saw.
                scores, found = index.search(vectors[rng.integers(0, len(vectors), 3)], 10_000)
                assert found.shape[1] % batch == 0, "a search saw half a batch"
                assert np.isin(found, ids).all() and (np.diff(scores, axis=1) <= 1e-6).all()
                seen.append(found.shape[1])
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=searcher, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for start in range(batch, len(ids), batch):
        index.add(ids[start : start + batch], vectors[start : start + batch])
        if start % (4 * batch) == 0:
            index.remove(ids[start : start + batch])
            index.add(ids[start : start + batch], vectors[start : start + batch])
    done.set()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert seen and len(index) == len(ids)


@needs_proc
def test_the_index_file_and_its_folder_are_fsynced_in_that_order(tmp_path: Path, fsynced: list[str]) -> None:
    """VectorIndex.save: the temporary file is flushed before the rename, its folder after it."""
    index = VectorIndex.create(4, backend="numpy", approximate_threshold=1000)
    index.add(np.arange(1, 4, dtype=np.int64), np.eye(3, 4, dtype=np.float32))
    target = tmp_path / "x.idx"
    index.save(target)
    assert fsynced == [str(tmp_path / ".x.idx.tmp"), str(tmp_path)]
    assert len(VectorIndex.load(target)) == 3


def test_a_small_exact_index_is_read_changed_and_written_without_faiss(
    tmp_path: Path, data: tuple[np.ndarray, np.ndarray, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    ids, vectors, queries = data
    monkeypatch.setattr(vindex, "FLAT_VIEW_MAX", 0)
    built = VectorIndex.build(ids, vectors)  # by FAISS itself
    assert isinstance(built._store, vindex._FaissStore)
    path = tmp_path / "clip.vindex"
    built.save(path)
    expected = [built.search(queries, 10, allowed=a) for a in (None, ids[::5])]
    real_faiss = vindex._faiss
    monkeypatch.setattr(vindex, "FLAT_VIEW_MAX", 64 << 20)
    monkeypatch.setattr(vindex, "_faiss", lambda: pytest.fail("FAISS was needed"))
    # FAISS's own layout, parsed here: a FAISS that wrote another would leave the view unused (caught here).
    view = VectorIndex.load(path)
    assert isinstance(view._store, vindex._FlatView) and view.backend == "faiss" and view.kind == "flat"
    for a, (s1, i1) in zip((None, ids[::5]), expected, strict=True):
        s2, i2 = view.search(queries, 10, allowed=a)
        np.testing.assert_array_equal(i1, i2)
        np.testing.assert_allclose(s1, s2, atol=1e-6)
    # Added to, removed from and saved, still without FAISS.
    extra = clustered(3, seed=9)
    new_ids = np.array([10**6, 10**6 + 1, 10**6 + 2])
    view.add(new_ids, extra)
    assert view.remove(ids[:10]) == 10
    view.save(path)
    assert view.search(extra[1], 1)[1][0, 0] == 10**6 + 1
    # FAISS reads what the view wrote, and answers as the view does.
    monkeypatch.setattr(vindex, "_faiss", real_faiss)
    monkeypatch.setattr(vindex, "FLAT_VIEW_MAX", 0)
    by_faiss = VectorIndex.load(path)
    assert isinstance(by_faiss._store, vindex._FaissStore) and len(by_faiss) == len(ids) - 10 + 3
    (s1, i1), (s2, i2) = by_faiss.search(queries, 10), view.search(queries, 10)
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_allclose(s1, s2, atol=1e-6)
    # Grown past a view's size, it becomes the FAISS index it stands for.
    monkeypatch.setattr(vindex, "FLAT_VIEW_MAX", 4 * 64 * len(view))
    view.add(np.array([2 * 10**6]), clustered(1, seed=10))
    assert isinstance(view._store, vindex._FaissStore) and len(view) == len(ids) - 10 + 4
    # A layout the view does not know falls back to FAISS.
    monkeypatch.setattr(vindex, "FLAT_VIEW_MAX", 64 << 20)
    monkeypatch.setattr(vindex._FlatView, "_INNER_PRODUCT", 7)  # as if the metric code had moved
    fallback = VectorIndex.load(path)
    assert isinstance(fallback._store, vindex._FaissStore) and len(fallback) == len(ids) - 10 + 3
