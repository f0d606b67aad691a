"""The text reader: PP-OCRv4 detection + recognition (rapidocr-onnxruntime) on ONNX Runtime, or on the NPU.

rapidocr does the model's own pre- and post-processing (DB box finding, crops, CTC decoding); the
models' sessions are what changes between runtimes. On the CPU rapidocr's ONNX Runtime sessions
run; where Axera's AX650 builds of the same models are present (`models/ocr/ppocr-v4.toml`, roles
`det-npu` and `rec-npu`), their `AxSession`s (the `Session` protocol of inference/sessions/base.py)
replace them behind adapters that pad to the compiled static shapes (docs/ocr.md, "On the NPU").
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from photoindex.errors import ModelError, PhotoindexError

if TYPE_CHECKING:
    from photoindex.config import OcrConfig, RuntimeConfig
    from photoindex.inference.sessions.base import Session

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

log = logging.getLogger("photoindex")

OCR_PACKAGE = "rapidocr_onnxruntime"
MANIFEST = "ppocr-v4"
INSTALL_HINT = "install the `ocr` extra: pip install 'photoindex[ocr]' (or set `[ocr] enabled = false`)"


def available() -> bool:
    """Whether the OCR package is installed (checked without importing it)."""
    return importlib.util.find_spec(OCR_PACKAGE) is not None


def models_id() -> str:
    """The OCR models' identity, without loading them: the manifest and the version of the package that ships
    the model files. Each reading stores it (`photo_text.engine` starts with it); readings by other models are
    read again (docs/ocr.md, "New OCR models")."""
    return f"{MANIFEST}/rapidocr-{_version()}"


class ReadAborted(Exception):
    """A read stopped by `TextReader.abort()`: the photo stays unread."""


@dataclass(frozen=True)
class TextLine:
    """One line read in a photo: its text, the recognizer's confidence, and its box (4 corners, displayed pixels)."""

    text: str
    confidence: float
    box: tuple[tuple[int, int], ...]

    def to_json(self) -> dict[str, object]:
        """As stored in `photo_text.lines`."""
        return {"text": self.text, "confidence": round(self.confidence, 4), "box": [list(p) for p in self.box]}


@dataclass(frozen=True)
class OcrFile:
    """One file of the OCR manifest."""

    role: str
    name: str
    package: str | None = None
    optional: bool = False


@dataclass(frozen=True)
class OcrManifest:
    """The OCR models: which files, where they are found."""

    name: str
    title: str
    files: tuple[OcrFile, ...] = field(default_factory=tuple)

    def file(self, role: str) -> OcrFile | None:
        """The file with this role, if the manifest has one."""
        return next((f for f in self.files if f.role == role), None)


def read_manifest(name: str = MANIFEST) -> OcrManifest:
    """The shipped OCR manifest `models/ocr/NAME.toml`."""
    from photoindex.resources import models_dir

    path = models_dir() / "ocr" / f"{name}.toml"
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
        files = tuple(
            OcrFile(str(f["role"]), str(f["name"]), f.get("package"), bool(f.get("optional", False)))
            for f in data.get("files", [])
        )
        return OcrManifest(str(data["name"]), str(data.get("title", data["name"])), files)
    except (OSError, KeyError, TypeError, tomllib.TOMLDecodeError) as exc:
        raise ModelError(f"{path}: cannot read the OCR manifest: {exc}", "reinstall photoindex") from None


def _package_file(f: OcrFile) -> Path:
    spec = importlib.util.find_spec(f.package or OCR_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise PhotoindexError("the OCR models are not installed", INSTALL_HINT)
    return Path(next(iter(spec.submodule_search_locations))) / "models" / f.name


class _DetOnSession:
    """rapidocr's detector session (`infer(img) -> [prob_map]`) on a `Session`, padding to a static shape."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.spec = session.inputs[0]

    def __call__(self, img: np.ndarray) -> list[np.ndarray]:
        _, _, h, w = img.shape
        fixed_h, fixed_w = self.spec.shape[2], self.spec.shape[3]
        feed = img
        if fixed_h is not None and fixed_w is not None:
            if h > fixed_h or w > fixed_w:
                raise ModelError(
                    f"the NPU detector takes at most {fixed_w}x{fixed_h}, got {w}x{h}",
                    f"set `[ocr] max_side` to {min(fixed_h, fixed_w)} or less",
                )
            feed = np.zeros((1, img.shape[1], fixed_h, fixed_w), dtype=np.float32)
            feed[:, :, :h, :w] = img
        out = self.session.run({self.spec.name: _as_input(feed, self.spec.dtype)})[0]
        return [np.asarray(out, dtype=np.float32)[:, :, :h, :w]]


class _RecOnSession:
    """rapidocr's recognizer session (`session(batch) -> [logits]`) on a `Session` of a static batch and width."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.spec = session.inputs[0]

    def __call__(self, batch: np.ndarray) -> list[np.ndarray]:
        n, c, h, w = batch.shape
        size, fixed_w = self.spec.shape[0] or n, self.spec.shape[3] or w
        if w > fixed_w:  # a wider line than compiled: squeeze it (rare; long lines lose some accuracy)
            from PIL import Image

            batch = np.stack(
                [
                    np.stack([np.asarray(Image.fromarray(ch).resize((fixed_w, h))) for ch in item])
                    for item in batch.astype(np.float32)
                ]
            )
        outputs = []
        for start in range(0, n, size):
            chunk = np.zeros((size, c, h, fixed_w), dtype=np.float32)
            part = batch[start : start + size]
            chunk[: len(part), :, :, : part.shape[3]] = part
            out = self.session.run({self.spec.name: _as_input(chunk, self.spec.dtype)})[0]
            outputs.append(np.asarray(out)[: len(part)])
        return [np.concatenate(outputs)]


class _Abortable:
    """An ONNX Runtime session whose every run uses the given `RunOptions` (rapidocr passes none)."""

    def __init__(self, session: object, options: object) -> None:
        self._session = session
        self._options = options

    def run(self, names: object, feed: object, run_options: object = None) -> object:
        return self._session.run(names, feed, self._options)  # type: ignore[attr-defined]

    def __getattr__(self, name: str) -> object:
        return getattr(self._session, name)


def _as_input(normalized: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Float input as PP-OCR normalizes it ((x/255 - 0.5) / 0.5), or the uint8 pixels a model with its own
    normalization takes."""
    if dtype == np.uint8:
        return np.clip(np.rint((normalized * 0.5 + 0.5) * 255.0), 0, 255).astype(np.uint8)
    return normalized.astype(dtype, copy=False)


class TextReader:
    """Reads the text lines of a photo's pixels (RGB uint8); one per process, reused for every photo."""

    def __init__(self, ocr: OcrConfig, runtime: RuntimeConfig, models_home: Path) -> None:
        """Load the detector and recognizer: NPU builds when present and allowed (`[ocr] runtime`), else the CPU."""
        if not available():
            raise PhotoindexError("reading text in photos needs the OCR models", INSTALL_HINT)
        from rapidocr_onnxruntime import RapidOCR  # imported here: photoindex runs without the extra

        self.manifest = read_manifest()
        self.min_confidence = ocr.min_confidence
        threads = runtime.threads if runtime.threads > 0 else -1
        paths = {}
        for role in ("det", "rec", "cls"):
            f = self.manifest.file(role)
            if f is not None:
                paths[role] = str(_package_file(f))
        self._engine = RapidOCR(
            det_model_path=paths["det"],
            rec_model_path=paths["rec"],
            cls_model_path=paths.get("cls"),
            use_cls="cls" in paths,
            det_limit_type="max",
            det_limit_side_len=ocr.max_side,
            max_side_len=ocr.max_side,
            text_score=ocr.min_confidence,
            intra_op_num_threads=threads,
            inter_op_num_threads=1,
        )
        self.providers = {"det": "onnxruntime:CPUExecutionProvider", "rec": "onnxruntime:CPUExecutionProvider"}
        self._abortable()
        self._use_npu(ocr.runtime, models_home / self.manifest.name)
        self.engine_id = models_id() + (
            "/npu" if any(p.startswith("axengine") for p in self.providers.values()) else ""
        )

    def _abortable(self) -> None:
        """Run rapidocr's ONNX Runtime sessions with one `RunOptions`, so that `abort()` stops a read mid-model."""
        import onnxruntime as ort

        self._run_options = ort.RunOptions()
        engine = self._engine
        for holder in (
            getattr(engine.text_det, "infer", None),
            getattr(getattr(engine, "text_cls", None), "infer", None),
            getattr(engine.text_rec, "session", None),
        ):
            if isinstance(getattr(holder, "session", None), ort.InferenceSession):
                holder.session = _Abortable(holder.session, self._run_options)  # type: ignore[union-attr]

    def abort(self) -> None:
        """Stop the read in progress (from another thread): it raises `ReadAborted`, as do reads until `resume()`."""
        self._run_options.terminate = True

    def resume(self) -> None:
        """Let reads run again after `abort()`."""
        self._run_options.terminate = False

    def _use_npu(self, mode: str, folder: Path) -> None:
        """Swap in the NPU builds of the detector and recognizer where present (`auto`), or insist (`npu`)."""
        if mode == "cpu":
            return
        from photoindex.inference.sessions.npu import axengine_status

        wanted = {role: folder / f.name for role in ("det", "rec") if (f := self.manifest.file(f"{role}-npu"))}
        present = {role: path for role, path in wanted.items() if path.is_file()}
        if mode != "npu" and not present:
            return  # nothing to run on the NPU: do not even import axengine
        status = axengine_status()
        if mode == "npu" and (not status.available or len(present) < len(wanted)):
            raise ModelError(
                "`[ocr] runtime = \"npu\"` but the NPU OCR models cannot run here"
                + ("" if status.available else f" ({status.reason})"),
                f"place {', '.join(p.name for p in wanted.values())} in {folder}, or set `[ocr] runtime = \"auto\"`",
            )
        if not present or not status.available:
            return
        from photoindex.inference.sessions.npu import AxSession

        for role, path in present.items():
            try:
                session = AxSession(path)
            except ModelError as exc:
                if mode == "npu":
                    raise
                log.warning("OCR %s on the NPU failed to load, the CPU reads instead: %s", role, exc.message)
                continue
            if role == "det":
                self._engine.text_det.infer = _DetOnSession(session)
            else:
                self._engine.text_rec.session = _RecOnSession(session)
            self.providers[role] = session.provider

    def read(self, pixels: np.ndarray, to_displayed: float = 1.0) -> list[TextLine]:
        """The lines read in RGB uint8 [H,W,3] pixels, top to bottom; boxes scaled by `to_displayed`."""
        bgr = np.ascontiguousarray(pixels[:, :, ::-1])
        try:
            result, _ = self._engine(bgr)
        except Exception:
            if self._run_options.terminate:
                raise ReadAborted() from None  # ONNX Runtime's "terminate flag" error, wrapped by rapidocr
            raise
        lines = []
        for box, text, score in result or []:
            text = str(text).strip()
            if not text or float(score) < self.min_confidence:
                continue
            corners = tuple((round(float(x) * to_displayed), round(float(y) * to_displayed)) for x, y in box)
            lines.append(TextLine(text, float(score), corners))
        return lines


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("rapidocr-onnxruntime")
    except PackageNotFoundError:  # pragma: no cover
        return "unknown"
