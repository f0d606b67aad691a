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
