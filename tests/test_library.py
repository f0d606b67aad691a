"""Library wiring: models are loaded on first use and really given back when released."""

from __future__ import annotations

import gc
import weakref

from photoindex.config import Config
from photoindex.library import open_library


def test_released_models_are_freed(config: Config) -> None:
    """After release nothing keeps a session alive (the daemon's idle release and a search's peak rely on it)."""
    with open_library(config) as lib:
        text = weakref.ref(lib.text_encoder()._session)
        image = weakref.ref(lib.image_encoder()._session)
        assert set(lib.choices) == {"text", "image"}
        assert lib.release_text_encoder() is True
        gc.collect()
        assert text() is None
        assert image() is not None
        lib.release_encoders()
        gc.collect()
        assert image() is None
        assert lib.release_text_encoder() is False
        assert lib.choices == {}
        # Loaded again on demand.
        assert lib.text_encoder().encode(["red"]).shape == (1, lib.bundle.manifest.embedding_dim)


def test_a_query_text_asked_again_is_not_encoded_again(config: Config) -> None:
    """Paging, another filter or sort re-ask the same text: its vector is kept, the model is not needed."""
    import numpy as np

    from photoindex import library

    with open_library(config) as lib:
        first = lib.text_vectors(["something red", "blue", "something red"])
        assert set(first) == {"something red", "blue"}
        expected = lib.text_encoder().encode(["something red"])[0]
        assert np.allclose(first["something red"], expected / np.linalg.norm(expected), atol=1e-6)
        lib.release_text_encoder()
        again = lib.text_vectors(["blue", "something red"])
        assert lib.choices.get("text") is None  # answered from memory: the text model was not loaded again
        assert again["blue"] is first["blue"] and again["something red"] is first["something red"]
        # A new text loads the model; the oldest texts go once more than TEXT_VECTORS_KEPT are kept.
        texts = [f"colour {i}" for i in range(library.TEXT_VECTORS_KEPT)]
        lib.text_vectors(texts)
        assert lib.choices.get("text") is not None
        lib.release_text_encoder()
        lib.text_vectors(texts[-3:])
        assert lib.choices.get("text") is None
        lib.text_vectors(["blue"])  # pushed out by the 256 newer texts
        assert lib.choices.get("text") is not None
