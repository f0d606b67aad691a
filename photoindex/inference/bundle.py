"""Model bundles: a manifest (TOML) that describes a CLIP export, and the folder that holds its files.

A manifest is the single description of a model: which files make it up (with sha256 and a
download URL when known), how images are preprocessed, which tokenizer feeds the text encoder,
and the embedding size. Nothing about a model is guessed in code (docs/architecture.md, invariant 8).
"""

from __future__ import annotations

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


def _req(table: dict[str, Any], key: str, where: str) -> Any:
    if key not in table:
        raise ModelError(
            f"{where}: missing key `{key}`", "see models/clip-vit-b32.toml for a complete manifest"
        )
    return table[key]


def _triple(value: Any, where: str) -> tuple[float, float, float]:
    if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, (int, float)) for v in value)):
        raise ModelError(f"{where}: expected a list of three numbers, got {value!r}")
    return (float(value[0]), float(value[1]), float(value[2]))


def _choice(value: Any, allowed: tuple[str, ...], where: str) -> Any:
    if value not in allowed:
        raise ModelError(f"{where}: {value!r} is not one of {', '.join(allowed)}")
    return value


def parse_manifest(data: dict[str, Any], where: str) -> Manifest:
    """Validate a manifest's TOML tables; `where` names the source in error messages."""
    name = str(_req(data, "name", where))
    img = _req(data, "image", where)
    txt = _req(data, "text", where)
    image = ImageSpec(
        size=int(_req(img, "size", f"{where} [image]")),
        resize=_choice(img.get("resize", "crop"), _RESIZE, f"{where} [image] resize"),
        interpolation=_choice(img.get("interpolation", "bicubic"), _INTERP, f"{where} [image] interpolation"),
        mean=_triple(img.get("mean", list(ImageSpec.mean)), f"{where} [image] mean"),
        std=_triple(img.get("std", list(ImageSpec.std)), f"{where} [image] std"),
        normalized_output=bool(img.get("normalized_output", False)),
    )
    text = TextSpec(
        tokenizer=_choice(
            _req(txt, "tokenizer", f"{where} [text]"), _TOKENIZERS, f"{where} [text] tokenizer"
        ),
        context_length=int(_req(txt, "context_length", f"{where} [text]")),
        normalized_output=bool(txt.get("normalized_output", False)),
    )
    files: list[ModelFile] = []
    for i, f in enumerate(data.get("files", [])):
        fw = f"{where} [[files]] #{i + 1}"
        sha = f.get("sha256") or None
        if sha is not None and (len(sha) != 64 or any(c not in "0123456789abcdef" for c in sha.lower())):
            raise ModelError(f"{fw}: sha256 {sha!r} is not 64 hex digits")
        files.append(
            ModelFile(
                role=_choice(_req(f, "role", fw), _ROLES, f"{fw} role"),
                name=str(_req(f, "name", fw)),
                sha256=sha.lower() if sha else None,
                url=f.get("url") or None,
                size=int(f["size"]) if f.get("size") is not None else None,
                optional=bool(f.get("optional", False)),
            )
        )
    roles = {f.role for f in files}
    if "image" not in roles and "image-npu" not in roles:
        raise ModelError(f"{where}: the bundle has no image encoder file (role `image` or `image-npu`)")
    if "text" not in roles and "text-npu" not in roles:
        raise ModelError(f"{where}: the bundle has no text encoder file (role `text`)")
    return Manifest(
        name=name,
        title=str(data.get("title", name)),
        embedding_dim=int(_req(data, "embedding_dim", where)),
        image=image,
        text=text,
        files=tuple(files),
        model_id=str(data.get("model_id", name)),
        homepage=data.get("homepage"),
        notes=data.get("notes"),
    )


def read_manifest(path: Path) -> Manifest:
    """Read and validate one manifest file."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ModelError(f"{path}: manifest not found") from None
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
    raise ModelError(f"unknown model bundle {spec!r}", f"use one of: {known}, or the path of a bundle folder")
