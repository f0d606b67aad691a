"""int8 variants of model bundles: ONNX Runtime dynamic quantization of the CPU encoders.

`quantize_bundle` writes a new bundle folder beside the original (`<name>-int8`), with its own
manifest: a new name and model id (int8 vectors are close to, but not the same as, the fp32 ones,
so docs/architecture.md, invariant 8 keeps them apart), real sha256s, and the same preprocessing and text specs.
Point `[model] bundle` (or `PHOTOINDEX_MODEL_BUNDLE`) at that folder and it is used like any other.

Weights are int8 (signed) per tensor and activations uint8, quantized on the fly: that is ONNX
Runtime's fast U8S8 path (about 2x the fp32 throughput of a ViT-B/32). Only MatMul is quantized: it
carries nearly all of a ViT's compute, and ConvInteger (the patch embedding) is slower in ONNX
Runtime than the float Conv.

Signed weights are quantized to 7 bits ([-64, 64], ONNX Runtime's `reduce_range`). On x86 CPUs
without VNNI (AVX2-only cores, e.g. AMD before Zen 4) the U8S8 kernel multiplies with VPMADDUBSW,
which adds two u8*s8 products into a saturating int16: 255*127*2 = 64770 is clipped, silently, so
a bundle quantized to full 8 bits can give vectors unrelated to the fp32 ones on such a machine
(the toy model's bright colours, whose activations are all near 255, came out at cosine 0.02 to
fp32 on an AVX2-only AMD EPYC, with ONNX Runtime 1.30 and 1.32 alike). With 7 bits,
255*64*2 = 32640 always fits. A bundle is a file that moves between machines, so it is made safe
for all of them, whichever CPU quantized it. Measured on a random-weight ViT-B/32: cosine to fp32
0.9990 (full 8 bits: 0.9996 where nothing saturates) at the same speed; unsigned weights (U8U8,
never saturating) are 0.9996 but ~20% slower.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any, Literal

from photoindex.errors import ModelError
from photoindex.inference.bundle import MANIFEST_NAME, Bundle, Manifest, ModelFile, read_manifest
from photoindex.inference.download import file_sha256

WeightType = Literal["qint8", "quint8"]

INSTALL_HINT = "install the quantization tools: pip install 'photoindex[quantize]' (it adds the `onnx` package)"
SUFFIX = "-int8"

# The image NPU model is not carried over: it is already quantized for the NPU and would give this
# bundle's id vectors of another model.
_CARRIED_ROLES = ("text", "text-npu", "matmul", "extra")


def _quantization() -> Any:
    """`onnxruntime.quantization`, which needs the `onnx` package (an optional extra)."""
    try:
        import onnx  # noqa: F401  (onnxruntime.quantization imports it; check first for a clear error)
        from onnxruntime import quantization
    except ImportError as exc:
        raise ModelError(f"ONNX Runtime's quantization tools cannot be loaded ({exc})", INSTALL_HINT) from None
    return quantization


class _DropAdvice(logging.Filter):
    """Drops onnxruntime.quantization's "consider pre-processing" advice (a log line, not an error)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Please consider to run pre-processing")


def _quantize_file(src: Path, dst: Path, weight_type: WeightType, per_channel: bool) -> None:
    q = _quantization()
    kind = q.QuantType.QInt8 if weight_type == "qint8" else q.QuantType.QUInt8
    root = logging.getLogger()
    # The quantizer logs generic advice (shape-inference pre-processing) on the root logger, which
    # reaches the user's terminal as a WARNING although nothing is wrong: drop that one line.
    advice = _DropAdvice()
    root.addFilter(advice)
    try:
        q.quantize_dynamic(
            str(src), str(dst), weight_type=kind, per_channel=per_channel, op_types_to_quantize=["MatMul"],
            # Signed weights in 7 bits: no int16 saturation on CPUs without VNNI (see the module doc).
            reduce_range=weight_type == "qint8",
        )
    # The quantizer raises whatever onnx or its graph walk raises on a model it cannot handle.
    except Exception as exc:
        raise ModelError(
            f"{src}: could not be quantized: {exc}",
            "check the file with `photoindex models verify`; only ONNX float models can be quantized",
        ) from exc
    finally:
        root.removeFilter(advice)


def _carry(src: Path, dst: Path) -> None:
    """Put an unchanged file into the new bundle: a hard link when possible (no second copy on disk)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a valid TOML basic string


def manifest_text(manifest: Manifest, origin: str) -> str:
    """A manifest as TOML that `read_manifest` reads back to the same value; `origin` goes in a comment."""
    m = manifest
    top: dict[str, Any] = {"name": m.name, "title": m.title, "model_id": m.model_id, "embedding_dim": m.embedding_dim}
    if m.homepage:
        top["homepage"] = m.homepage
    if m.notes:
        top["notes"] = m.notes
    image = {
        "size": m.image.size, "resize": m.image.resize, "interpolation": m.image.interpolation,
        "mean": list(m.image.mean), "std": list(m.image.std), "normalized_output": m.image.normalized_output,
    }
    text = {"tokenizer": m.text.tokenizer, "context_length": m.text.context_length,
            "normalized_output": m.text.normalized_output}
    lines = [f"# {origin}"]
    lines += [f"{k} = {_toml(v)}" for k, v in top.items()]
    lines += ["", "[image]"] + [f"{k} = {_toml(v)}" for k, v in image.items()]
    lines += ["", "[text]"] + [f"{k} = {_toml(v)}" for k, v in text.items()]
    for f in m.files:
        entry: dict[str, Any] = {"role": f.role, "name": f.name}
        if f.sha256:
            entry["sha256"] = f.sha256
        if f.size is not None:
            entry["size"] = f.size
        if f.url:
            entry["url"] = f.url
        if f.optional:
            entry["optional"] = True
        lines += ["", "[[files]]"] + [f"{k} = {_toml(v)}" for k, v in entry.items()]
    return "\n".join(lines) + "\n"


def default_output(bundle: Bundle) -> Path:
    """Where `quantize_bundle` writes when no folder is given: `<name>-int8` beside the bundle's folder."""
    return bundle.directory.parent / f"{bundle.manifest.name}{SUFFIX}"


def quantize_bundle(
    bundle: Bundle,
    out: Path | None = None,
    *,
    text: bool = False,
    weight_type: WeightType = "qint8",
    per_channel: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write an int8 variant of `bundle` (image encoder, and the text encoder when `text`) as a new bundle folder.

    The folder gets its own `manifest.toml` (name and model id suffixed `-int8`, sha256 and size of
    every file, the same image and text specs) and appears whole or not at all: it is built under a
    temporary name and renamed. Returns the folder.
    """
    if weight_type not in ("qint8", "quint8"):
        raise ValueError(f"unknown weight type {weight_type!r}; use 'qint8' or 'quint8'")
    m = bundle.manifest
    image_file = m.file("image")
    if image_file is None:
        raise ModelError(
            f"bundle {m.name} has no CPU image encoder (role `image`) to quantize",
            "quantize a bundle with an ONNX image encoder; NPU models are quantized already",
        )
    missing = bundle.missing()
    if missing:
        names = ", ".join(f.name for f in missing)
        raise ModelError(
            f"bundle {m.name} is not complete in {bundle.directory} (missing {names})",
            f"run `photoindex models fetch {m.name}` first",
        )
    out = Path(out) if out is not None else default_output(bundle)
    if out.resolve() == bundle.directory.resolve():
        raise ModelError(f"{out}: is the bundle's own folder", "write the int8 bundle to another folder")
    if out.exists() and not overwrite:
        raise ModelError(
            f"{out}: already exists",
            "remove it or choose another folder (`photoindex models quantize --force` replaces it)",
        )
    _quantization()  # fail before any work when the tools are missing
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)  # a leftover of an interrupted run
    tmp.mkdir()
    try:
        files: list[ModelFile] = []
        for f in m.files:
            src = bundle.directory / f.name
            if f.role == "image":
                _quantize_file(src, tmp / f.name, weight_type, per_channel)
            elif f.role == "text" and text:
                _quantize_file(src, tmp / f.name, weight_type, per_channel)
            elif f.role in _CARRIED_ROLES and src.is_file():
                _carry(src, tmp / f.name)
            else:
                continue  # the image NPU model, or an optional file that was never fetched
            files.append(ModelFile(role=f.role, name=f.name, sha256=file_sha256(tmp / f.name),
                                   size=(tmp / f.name).stat().st_size, optional=f.optional))
        which = "image and text encoders" if text else "image encoder"
        manifest = Manifest(
            name=f"{m.name}{SUFFIX}",
            title=f"{m.title}, int8 {which}",
            embedding_dim=m.embedding_dim,
            image=m.image,
            text=m.text,
            files=tuple(files),
            model_id=f"{m.model_id}{SUFFIX}",
            homepage=m.homepage,
            notes=f"Written by `photoindex models quantize` from bundle {m.name} ({m.model_id}): "
                  f"dynamic {weight_type} quantization of the {which}"
                  f"{', per channel' if per_channel else ''}.",
        )
        (tmp / MANIFEST_NAME).write_text(manifest_text(manifest, f"int8 variant of {m.name}"), encoding="utf-8")
        read_manifest(tmp / MANIFEST_NAME)  # the file must read back, or nothing is published
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
