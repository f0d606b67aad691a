"""scoring.py against ONNX Runtime running the generated `feature_matmul.onnx` (docs/models.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from photoindex.inference.sessions.ort import OrtSession
from photoindex.testing import make_feature_matmul
from photoindex.vectors.scoring import cosine_scores, feature_matmul, l2_normalize


@pytest.fixture(scope="module")
def matmul_session(tmp_path_factory: pytest.TempPathFactory) -> OrtSession:
    path = tmp_path_factory.mktemp("matmul") / "feature_matmul.onnx"
    make_feature_matmul(path)
    return OrtSession(path)


def test_feature_matmul_graph_has_axera_names(matmul_session: OrtSession) -> None:
    assert [(t.name, t.shape, t.dtype) for t in matmul_session.inputs] == [
        ("image_features", (None, 512), np.dtype(np.float32)),
        ("text_features", (None, 512), np.dtype(np.float32)),
    ]
    assert [(t.name, t.shape) for t in matmul_session.outputs] == [
        ("logits_per_image", (None, None)),
        ("logits_per_text", (None, None)),
    ]


@pytest.mark.parametrize(
    ("n_img", "n_txt", "seed"), [(1, 1, 0), (7, 1, 1), (1, 5, 2), (1000, 1, 3), (1000, 3, 4), (33, 17, 5)]
)
def test_numpy_feature_matmul_equals_onnx_runtime(
    matmul_session: OrtSession, n_img: int, n_txt: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    # Image features unnormalized with varied norms (as Axera's image encoder returns), texts unit length.
    img = (rng.standard_normal((n_img, 512)) * rng.uniform(0.5, 30.0, (n_img, 1))).astype(np.float32)
    txt = l2_normalize(rng.standard_normal((n_txt, 512)).astype(np.float32))
    # Correlated pairs make some probabilities sharp, as real matches are.
    txt[0] = l2_normalize(img[0] + 0.5 * rng.standard_normal(512).astype(np.float32))
    per_image, per_text = feature_matmul(img, txt)
    ort_image, ort_text = matmul_session.run({"image_features": img, "text_features": txt})
    assert per_image.shape == ort_image.shape == (n_img, n_txt)
    assert per_text.shape == ort_text.shape == (n_txt, n_img)
    assert per_image.dtype == per_text.dtype == np.float32
    # The fixed x100 turns float32 rounding of the dot products (~1e-7 relative, which differs between
    # OpenBLAS and MLAS) into ~1e-5 on the logits, so two exact float32 implementations of the same
    # graph differ by up to ~3e-6 in probability. A wrong axis, scale or normalization differs by >1e-2.
    np.testing.assert_allclose(per_image, ort_image, rtol=0, atol=1e-5)
    np.testing.assert_allclose(per_text, ort_text, rtol=0, atol=1e-5)
    np.testing.assert_allclose(per_image.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(per_text.sum(axis=1), 1.0, atol=1e-5)


def test_softmax_over_images_depends_on_collection_size_but_cosine_does_not() -> None:
    # Why search ranks by cosine (docs/models.md, "Scores"): adding photos changes softmax scores, not cosines.
    rng = np.random.default_rng(9)
    img = l2_normalize(rng.standard_normal((10, 512)).astype(np.float32))
    txt = l2_normalize(rng.standard_normal((1, 512)).astype(np.float32))
    small = feature_matmul(img[:3], txt)[1][0, 0]
    large = feature_matmul(img, txt)[1][0, 0]
    assert small != pytest.approx(large, abs=1e-9)
    np.testing.assert_allclose(cosine_scores(img[:3], txt), cosine_scores(img, txt)[:3], atol=1e-6)


def test_l2_normalize_keeps_zero_rows_zero() -> None:
    out = l2_normalize(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0]])


def test_generated_matmul_is_written_where_asked(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "m.onnx"
    make_feature_matmul(path, embedding_dim=8)
    session = OrtSession(path)
    assert session.inputs[0].shape == (None, 8)
