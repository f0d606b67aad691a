"""Scores between image and text vectors, including the exact equivalent of Axera's `feature_matmul.onnx`."""

from __future__ import annotations

import numpy as np


def l2_normalize(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Rows scaled to unit length (float32); zero rows stay zero instead of becoming NaN."""
    x = np.asarray(x, dtype=np.float32)
    norm = np.linalg.norm(x, axis=axis, keepdims=True)
    return x / np.maximum(norm, np.float32(1e-12))


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    shifted = x - x.max(axis=axis, keepdims=True)
    e = np.exp(shifted)
    return (e / e.sum(axis=axis, keepdims=True)).astype(np.float32)


def feature_matmul(image_features: np.ndarray, text_features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both outputs of `feature_matmul.onnx`: (logits_per_image [N_img,N_txt], logits_per_text [N_txt,N_img]).

    As in the ONNX graph, only the image side is normalized, the scale 100 is fixed, and
    despite their names both outputs are softmax probabilities (over texts, and over images).
    """
    img = np.asarray(image_features, dtype=np.float32)
    txt = np.asarray(text_features, dtype=np.float32)
    img = img / np.linalg.norm(img, axis=1, keepdims=True)
    logits = np.float32(100.0) * (img @ txt.T)
    return _softmax(logits, axis=1), _softmax(logits.T, axis=1)


def cosine_scores(vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Cosine similarity of each stored (unit) vector with one or more (unit) queries: [N] or [N, Q]."""
    return np.asarray(vectors, dtype=np.float32) @ np.asarray(query, dtype=np.float32).T
