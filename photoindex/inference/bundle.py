"""Model bundles: a manifest (TOML) that describes a CLIP export, and the folder that holds its files.

A manifest is the single description of a model: which files make it up (with sha256 and a
download URL when known), how images are preprocessed, which tokenizer feeds the text encoder,
and the embedding size. Nothing about a model is guessed in code (docs/architecture.md, invariant 8).
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from photoindex.errors import ModelError
from photoindex.resources import models_dir

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

MANIFEST_NAME = "manifest.toml"

ResizeMode = Literal["crop", "squash"]
Interpolation = Literal["bicubic", "bilinear", "nearest", "lanczos"]
TokenizerKind = Literal["clip-bpe", "bert-chinese"]
FileRole = Literal["image", "image-npu", "text", "text-npu", "matmul", "extra"]

_ROLES = ("image", "image-npu", "text", "text-npu", "matmul", "extra")
_RESIZE = ("crop", "squash")
_INTERP = ("bicubic", "bilinear", "nearest", "lanczos")
_TOKENIZERS = ("clip-bpe", "bert-chinese")


@dataclass(frozen=True)
class ModelFile:
    """One file of a bundle: its role, name inside the bundle folder, and how to check and fetch it."""

    role: FileRole
    name: str
    sha256: str | None = None
    url: str | None = None
    size: int | None = None
    optional: bool = False


@dataclass(frozen=True)
class ImageSpec:
    """How a photo becomes the image encoder's input."""

    size: int
    resize: ResizeMode = "crop"
    interpolation: Interpolation = "bicubic"
    mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
    normalized_output: bool = False


@dataclass(frozen=True)
class TextSpec:
    """How a query becomes the text encoder's input."""

    tokenizer: TokenizerKind
    context_length: int
    normalized_output: bool = False


@dataclass(frozen=True)
class Manifest:
    """A model bundle's description; `model_id` keys its vectors so different models never mix."""

    name: str
    title: str
    embedding_dim: int
    image: ImageSpec
    text: TextSpec
    files: tuple[ModelFile, ...]
    model_id: str
    homepage: str | None = None
    notes: str | None = None

    def file(self, role: FileRole) -> ModelFile | None:
        """The first file with this role, or None when the bundle has none."""
        for f in self.files:
            if f.role == role:
                return f
        return None


@dataclass(frozen=True)
class Bundle:
    """A manifest together with the folder where its files are (or will be) placed."""

    manifest: Manifest
    directory: Path
    source: Path = field(default=Path())  # the manifest file it was read from

    def path(self, role: FileRole) -> Path | None:
        """Absolute path of the file with this role (it may not exist yet), or None if the role is absent."""
        f = self.manifest.file(role)
        return None if f is None else self.directory / f.name

    def missing(self) -> list[ModelFile]:
        """Required files that are not present in the bundle folder."""
        return [f for f in self.manifest.files if not f.optional and not (self.directory / f.name).is_file()]


_MANIFEST_HINT = "fix the manifest; see models/clip-vit-b32.toml for a complete one"


def _req(table: dict[str, Any], key: str, where: str) -> Any:
    if key not in table:
        raise ModelError(f"{where}: missing key `{key}`", _MANIFEST_HINT)
    return table[key]


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ModelError(f"{where}: expected a table, got {value!r}", _MANIFEST_HINT)
    return value


def _int(value: Any, where: str, at_least: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < at_least:
        raise ModelError(f"{where} = {value!r} is not a whole number of at least {at_least}", _MANIFEST_HINT)
    return value


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ModelError(f"{where} = {value!r} is not a non-empty string", _MANIFEST_HINT)
    return value


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ModelError(f"{where} = {value!r} is not true or false", _MANIFEST_HINT)
    return value


def _triple(value: Any, where: str) -> tuple[float, float, float]:
    if not (
        isinstance(value, list)
        and len(value) == 3
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    ):
        raise ModelError(f"{where}: expected a list of three numbers, got {value!r}", _MANIFEST_HINT)
    return (float(value[0]), float(value[1]), float(value[2]))


def _choice(value: Any, allowed: tuple[str, ...], where: str) -> Any:
    if value not in allowed:
        raise ModelError(f"{where}: {value!r} is not one of {', '.join(allowed)}", _MANIFEST_HINT)
    return value


def parse_manifest(data: dict[str, Any], where: str) -> Manifest:
    """Validate a manifest's TOML tables; `where` names the source in error messages."""
    name = _str(_req(data, "name", where), f"{where}: name")
    img = _table(_req(data, "image", where), f"{where} [image]")
    txt = _table(_req(data, "text", where), f"{where} [text]")
    image = ImageSpec(
        size=_int(_req(img, "size", f"{where} [image]"), f"{where} [image] size"),
        resize=_choice(img.get("resize", "crop"), _RESIZE, f"{where} [image] resize"),
        interpolation=_choice(img.get("interpolation", "bicubic"), _INTERP, f"{where} [image] interpolation"),
        mean=_triple(img.get("mean", list(ImageSpec.mean)), f"{where} [image] mean"),
        std=_triple(img.get("std", list(ImageSpec.std)), f"{where} [image] std"),
        normalized_output=_bool(img.get("normalized_output", False), f"{where} [image] normalized_output"),
    )
    text = TextSpec(
        tokenizer=_choice(
            _req(txt, "tokenizer", f"{where} [text]"), _TOKENIZERS, f"{where} [text] tokenizer"
        ),
        context_length=_int(_req(txt, "context_length", f"{where} [text]"), f"{where} [text] context_length"),
        normalized_output=_bool(txt.get("normalized_output", False), f"{where} [text] normalized_output"),
    )
    files: list[ModelFile] = []
    listed = data.get("files", [])
    if not isinstance(listed, list):
        raise ModelError(f"{where}: `files` must be [[files]] tables", _MANIFEST_HINT)
    for i, entry in enumerate(listed):
        fw = f"{where} [[files]] #{i + 1}"
        f = _table(entry, fw)
        sha = f.get("sha256") or None
        if sha is not None and (
            not isinstance(sha, str) or len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha.lower())
        ):
            raise ModelError(f"{fw}: sha256 {sha!r} is not 64 hex digits", _MANIFEST_HINT)
        url = f.get("url") or None
        files.append(
            ModelFile(
                role=_choice(_req(f, "role", fw), _ROLES, f"{fw} role"),
                name=_str(_req(f, "name", fw), f"{fw} name"),
                sha256=sha.lower() if sha else None,
                url=_str(url, f"{fw} url") if url is not None else None,
                size=_int(f["size"], f"{fw} size", at_least=0) if f.get("size") is not None else None,
                optional=_bool(f.get("optional", False), f"{fw} optional"),
            )
        )
    roles = {f.role for f in files}
    if "image" not in roles and "image-npu" not in roles:
        raise ModelError(f"{where}: the bundle has no image encoder file (role `image` or `image-npu`)")
    if "text" not in roles and "text-npu" not in roles:
        raise ModelError(f"{where}: the bundle has no text encoder file (role `text`)")
    return Manifest(
        name=name,
        title=_str(data.get("title", name), f"{where}: title"),
        embedding_dim=_int(_req(data, "embedding_dim", where), f"{where}: embedding_dim"),
        image=image,
        text=text,
        files=tuple(files),
        model_id=_str(data.get("model_id", name), f"{where}: model_id"),
        homepage=data.get("homepage"),
        notes=data.get("notes"),
    )


def read_manifest(path: Path) -> Manifest:
    """Read and validate one manifest file."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{path}: manifest not found") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read the manifest: {exc.strerror or exc}", "check its permissions") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ModelError(
            f"{path}: line {line}: not UTF-8 text (byte 0x{raw[exc.start]:02x})", "save the manifest as UTF-8"
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(f"{path}: invalid TOML: {exc}", "fix the manifest's syntax") from None
    return parse_manifest(data, str(path))


def shipped_manifests() -> dict[str, Path]:
    """Manifest name -> file, for every manifest that ships with photoindex."""
    folder = models_dir()
    return {p.stem: p for p in sorted(folder.glob("*.toml"))}


def resolve_bundle(spec: str, models_home: Path) -> Bundle:
    """Resolve `[model] bundle`: a shipped manifest name (files under `models_home/NAME/`) or a bundle folder.

    A bundle folder holds its own `manifest.toml` next to the model files, so a user can add
    any CLIP export without code changes.
    """
    candidate = Path(spec).expanduser()
    if candidate.is_dir():
        manifest_path = candidate / MANIFEST_NAME
        if not manifest_path.is_file():
            raise ModelError(
                f"{candidate}: the folder has no {MANIFEST_NAME}",
                "add a manifest describing the files (see the shipped ones in models/), or name a shipped bundle",
            )
        return Bundle(read_manifest(manifest_path), candidate.resolve(), manifest_path)
    if candidate.suffix == ".toml" and candidate.is_file():
        manifest = read_manifest(candidate)
        return Bundle(manifest, candidate.resolve().parent, candidate)
    shipped = shipped_manifests()
    if spec in shipped:
        manifest = read_manifest(shipped[spec])
        return Bundle(manifest, (models_home / manifest.name).resolve(), shipped[spec])
    if "/" in spec or spec.startswith("."):
        raise ModelError(f"{spec}: no such bundle folder", "check the path in `[model] bundle`")
    known = ", ".join(shipped) or "(none)"
    raise ModelError(
        f"unknown model bundle {spec!r}: not a shipped bundle, and no folder {os.path.abspath(spec)}",
        f"use one of: {known}, or the path of a bundle folder (a relative path is taken from the folder "
        "photoindex starts in; an absolute one works from anywhere)",
    )
