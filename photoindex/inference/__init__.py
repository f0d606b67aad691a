"""Inference: model bundles, tokenizers, runtime sessions and the encoders built on them.

Modules: `bundle` (manifest + resolving), `download`, `quantize`, `modelcache` (fast-loading
copies), `tokenizers`, `encoders` (own their input layout), `select` (NPU or CPU, and why),
`sessions/` (the session protocol and its ONNX Runtime and axengine adapters)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from photoindex.lazy import public_names

# Public names, loaded on first use so that importing this package stays cheap
# (see docs/architecture.md, "Start-up").
_PUBLIC = {
    "Bundle": "bundle",
    "ImageSpec": "bundle",
    "Manifest": "bundle",
    "resolve_bundle": "bundle",
    "ImageEncoder": "encoders",
    "TextEncoder": "encoders",
    "RuntimeChoice": "select",
    "open_image_encoder": "select",
    "open_text_encoder": "select",
    "plan_runtime": "select",
    "load_tokenizer": "tokenizers",
}

if TYPE_CHECKING:
    from photoindex.inference.bundle import Bundle, ImageSpec, Manifest, resolve_bundle
    from photoindex.inference.encoders import ImageEncoder, TextEncoder
    from photoindex.inference.select import RuntimeChoice, open_image_encoder, open_text_encoder, plan_runtime
    from photoindex.inference.tokenizers import load_tokenizer

__getattr__, __all__ = public_names(__name__, _PUBLIC)
