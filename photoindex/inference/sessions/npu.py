"""The Axera NPU through pyaxengine (Python module `axengine`), behind the `Session` protocol of ONNX Runtime.

pyaxengine's contract (docs/models.md): `import axengine` prints its providers to stdout and raises
ImportError when neither `libax_engine` nor `libaxcl_rt` is found; `.axmodel` files have static
shapes (batch 1); `run` asserts each array's exact shape and dtype and never casts; one session has
one set of IO buffers and no lock; `get_providers()` returns a str; builds before 0.1.3rc1 return
outputs that alias the NPU buffer, overwritten by the next run.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import io
import logging
import os
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from photoindex.errors import ModelError, RuntimeUnavailable
from photoindex.inference.sessions.base import FixedSpecs, TensorSpec

logger = logging.getLogger("photoindex")

INSTALL_HINT = (
    "install the axengine wheel (0.1.3rc1 or newer) from the pyaxengine GitHub releases on the board "
    '(not the unrelated PyPI package `ax-engine`), or run on the CPU with `[runtime] image = "cpu"`'
)
_LOAD_HINT = (
    "check that the .axmodel was compiled for this chip and fits the NPU's memory "
    "(`photoindex models verify`), or run this encoder on the CPU"
)


def _flush_c_stdio() -> None:
    # A C-level printf into a redirected fd 1 sits in libc's buffer; flush it before fd 1 is
    # restored, or it would reach the real stdout later.
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).fflush(None)


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[io.StringIO]:
    """Keep stdout clean while third-party code runs: Python prints are captured, C prints go to fd 2.

    The redirect is process-wide for its short duration (an import), which is why it is only
    used around `import axengine`.
    """
    captured = io.StringIO()
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    saved: int | None = None
    try:
        saved = os.dup(1)
        os.dup2(2, 1)
    except OSError:  # no fd 1 or fd 2 (a daemonized process): the Python-level capture still works
        if saved is not None:
            os.close(saved)
        saved = None
    try:
        with contextlib.redirect_stdout(captured):
            yield captured
    finally:
        _flush_c_stdio()
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


@dataclass(frozen=True)
class AxengineStatus:
    """Whether `axengine` imports here; if not, why, and whether it is installed at all."""

    module: ModuleType | None
    reason: str | None  # None when it imports
    installed: bool  # False: not installed (normal off the board); True with a reason: a broken install

    @property
    def available(self) -> bool:
        """True when the module imported."""
        return self.module is not None


def axengine_status() -> AxengineStatus:
    """Try to import `axengine` (once per process if it works), keeping its provider printout off stdout."""
    loaded = sys.modules.get("axengine")
    if loaded is not None:  # imported (and announced) once already; nothing more to print
        return AxengineStatus(loaded, None, True)
    try:
        with _stdout_to_stderr() as said:
            module = importlib.import_module("axengine")
    except ImportError as exc:
        # "No module named 'axengine'" (not installed), or pyaxengine's own "No providers found..."
        # when neither libax_engine nor libaxcl_rt is on the machine (installed, no driver).
        not_installed = isinstance(exc, ModuleNotFoundError) and exc.name == "axengine"
        return AxengineStatus(None, str(exc) or type(exc).__name__, not not_installed)
    except Exception as exc:  # a broken driver install can fail with OSError or a cffi error
        return AxengineStatus(None, f"importing axengine failed: {type(exc).__name__}: {exc}", True)
    text = said.getvalue().strip()
    if text:
        logger.debug("axengine: %s", text)
    return AxengineStatus(module, None, True)


def import_axengine() -> ModuleType:
    """The `axengine` module (its provider printout kept off stdout); RuntimeUnavailable if not importable."""
    status = axengine_status()
    if status.module is None:
        raise RuntimeUnavailable(
            f"the NPU runtime (axengine) is not available: {status.reason}", INSTALL_HINT
        )
    return status.module


def _ax_spec(arg: Any, path: Path) -> TensorSpec:
    """A pyaxengine NodeArg (`.name`, `.shape` list of ints, `.dtype` numpy dtype) as a TensorSpec."""
    try:
        dtype = np.dtype(arg.dtype)
    except TypeError:
        raise ModelError(
            f"{path}: tensor `{arg.name}` has type {arg.dtype!r}, which photoindex cannot feed or read",
            _LOAD_HINT,
        ) from None
    # Compiled models are static; a non-positive dimension would be a dynamic one.
    shape = tuple(int(d) if int(d) > 0 else None for d in arg.shape)
    return TensorSpec(name=str(arg.name), shape=shape, dtype=dtype)


class AxSession(FixedSpecs):
    """An `.axmodel` run on the Axera NPU by pyaxengine, behind the `Session` protocol; thread-safe."""

    def __init__(self, path: Path, provider: str | None = None) -> None:
        axe = import_axengine()
        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(
                f"{self.path}: NPU model file not found",
                "fetch it with `photoindex models fetch NAME --all` (optional files are fetched only then)",
            )
        try:
            # pyaxengine takes one provider name (str) or a list; None means its first available one.
            self._session = axe.InferenceSession(str(self.path), providers=provider)
            providers = self._session.get_providers()
            self._inputs = [_ax_spec(a, self.path) for a in self._session.get_inputs()]
            self._outputs = [_ax_spec(a, self.path) for a in self._session.get_outputs()]
        except ModelError:
            raise
        except Exception as exc:
            raise ModelError(
                f"{self.path}: the NPU cannot load the model: {type(exc).__name__}: {exc}", _LOAD_HINT
            ) from exc
        # pyaxengine returns a str; onnxruntime-shaped builds would return a list.
        name = providers if isinstance(providers, str) else (list(providers) or ["unknown"])[0]
        self.provider = f"axengine:{name}"
        self._lock = threading.Lock()

    def _check_feeds(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Refuse anything but the exact compiled shape and dtype (pyaxengine asserts; it never casts)."""
        expected = {t.name: t for t in self._inputs}
        unknown = sorted(set(feeds) - set(expected))
        missing = sorted(set(expected) - set(feeds))
        if unknown or missing:
            raise ModelError(
                f"{self.path}: inputs {sorted(feeds)} do not match the model's {sorted(expected)}",
                "this is a bug in the caller: the NPU needs every input by its compiled name",
            )
        checked: dict[str, np.ndarray] = {}
        for name, array in feeds.items():
            spec = expected[name]
            if not isinstance(array, np.ndarray):
                raise ModelError(
                    f"{self.path}: input `{name}` is a {type(array).__name__}, not a numpy array"
                )
            shape_ok = len(array.shape) == len(spec.shape) and all(
                d is None or d == a for d, a in zip(spec.shape, array.shape, strict=True)
            )
            if array.dtype != spec.dtype or not shape_ok:
                want = "[" + ",".join("?" if d is None else str(d) for d in spec.shape) + "]"
                raise ModelError(
                    f"{self.path}: input `{name}` is {array.dtype} {list(array.shape)}, "
                    f"the compiled model takes exactly {spec.dtype} {want}",
                    "feed the compiled batch size, layout and dtype (the NPU does not cast or reshape)",
                )
            # Contiguity is not a cast: the values are unchanged, and the driver copies raw bytes.
            checked[name] = np.ascontiguousarray(array)
        return checked

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run once on the NPU (calls serialized); outputs are copies the caller owns."""
        checked = self._check_feeds(feeds)
        with self._lock:
            try:
                outputs = self._session.run(None, checked)
                # Copy while holding the lock: old builds return views of the NPU buffer,
                # which the next run (from any thread) overwrites.
                return [np.array(x, copy=True) for x in outputs]
            except Exception as exc:
                raise ModelError(
                    f"{self.path}: NPU inference failed: {type(exc).__name__}: {exc}", _LOAD_HINT
                ) from exc

    def __repr__(self) -> str:
        return f"AxSession({str(self.path)!r}, provider={self.provider!r})"
