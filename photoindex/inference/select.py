"""Runtime selection per encoder: the Axera NPU (axengine) or ONNX Runtime on the CPU, and why.

`[runtime] image` and `[runtime] text` are each "auto", "npu" or "cpu". Under "auto" the NPU is
used when `axengine` imports and the bundle's `<which>-npu` file is present; a failure to load
or to run there falls back to the CPU with exactly one warning line saying why (logged on the
"photoindex" logger and returned), never silently and never by retrying. A forced "npu" never
falls back: it raises a `RuntimeUnavailable` or `ModelError` that says what to do.

Falling back on a failed run happens at the encoder level, not the session level, because the two
models may differ in input layout (uint8 NHWC on the NPU, float32 NCHW on the CPU): each encoder
converts the same decoded pixels to its own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import numpy as np

from photoindex.config import RuntimeConfig
from photoindex.errors import ConfigError, ModelError, RuntimeUnavailable
from photoindex.inference.bundle import Bundle, FileRole, ImageSpec
from photoindex.inference.encoders import ImageEncoder, TextEncoder
from photoindex.inference.sessions.base import Session

if TYPE_CHECKING:
    from photoindex.inference.shorttext import TextProbe
    from photoindex.inference.tokenizers import Tokenizer

logger = logging.getLogger("photoindex")

Which = Literal["image", "text"]
Device = Literal["npu", "cpu"]
OnWarning = Callable[[str], None]

_MODES = ("auto", "npu", "cpu")
_CPU = "ONNX Runtime on the CPU"


@dataclass(frozen=True)
class RuntimeChoice:
    """Where one encoder runs, on which file, why, and the fallbacks taken to get there."""

    session: Session
    provider: str
    device: Device
    model_path: Path
    reason: str
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class _Plan:
    device: Device
    reason: str
    npu_path: Path | None
    cpu_path: Path | None
    warning: str | None = None  # set when auto passes over an NPU that should have worked


def _mode(runtime: RuntimeConfig, which: Which) -> str:
    mode = getattr(runtime, which)
    if mode not in _MODES:
        raise ConfigError(
            f"[runtime] {which} = {mode!r} is not one of auto, npu, cpu", "fix it in config.toml"
        )
    return str(mode)


def _fetch_hint(bundle: Bundle) -> str:
    return f"fetch it with `photoindex models fetch {bundle.manifest.name} --all` (the .axmodel is optional)"


def _plan(bundle: Bundle, which: Which, runtime: RuntimeConfig) -> _Plan:
    """Decide without loading anything; a forced NPU that cannot be used raises here."""
    from photoindex.inference.sessions.npu import INSTALL_HINT, axengine_status

    mode = _mode(runtime, which)
    npu_role: FileRole = "image-npu" if which == "image" else "text-npu"
    npu_path = bundle.path(npu_role)
    cpu_path = bundle.path(which)
    cpu_name = cpu_path.name if cpu_path is not None else None
    on_cpu = f"{_CPU} will be used" + (f" ({cpu_name})" if cpu_name else "")
    if mode == "cpu":
        return _Plan("cpu", f'[runtime] {which} = "cpu": {on_cpu}', npu_path, cpu_path)
    status = axengine_status()
    if status.reason is not None:
        if mode == "npu":
            raise RuntimeUnavailable(
                f'[runtime] {which} = "npu", but the NPU is not available: {status.reason}',
                INSTALL_HINT.replace('`[runtime] image = "cpu"`', f'`[runtime] {which} = "auto"`'),
            )
        # Off the board axengine is simply not installed: that is the normal case, not worth a warning.
        # Installed but failing to import (no driver library), with an NPU model to run, is a board
        # that lost its NPU: say so once.
        lost = status.installed and npu_path is not None and npu_path.is_file()
        warning = f"NPU not available ({status.reason}): falling back to {_CPU}" if lost else None
        return _Plan("cpu", f"NPU not available ({status.reason}): {on_cpu}", npu_path, cpu_path, warning)
    if npu_path is None:
        if mode == "npu":
            raise RuntimeUnavailable(
                f'[runtime] {which} = "npu", but bundle {bundle.manifest.name} '
                f"has no NPU model for the {which} encoder",
                f'set `[runtime] {which} = "auto"` or "cpu", or use a bundle with a `{npu_role}` file',
            )
        return _Plan(
            "cpu",
            f"axengine imported, but bundle {bundle.manifest.name} has no NPU model "
            f"for the {which} encoder: {on_cpu}",
            npu_path,
            cpu_path,
        )
    if not npu_path.is_file():
        if mode == "npu":
            raise RuntimeUnavailable(
                f'[runtime] {which} = "npu", but {npu_path} is missing', _fetch_hint(bundle)
            )
        return _Plan(
            "cpu",
            f"axengine imported, but {npu_path.name} is not in {npu_path.parent} "
            f"({_fetch_hint(bundle)}): {on_cpu}",
            npu_path,
            cpu_path,
        )
    forced = f' ([runtime] {which} = "npu")' if mode == "npu" else ""
    return _Plan(
        "npu",
        f"axengine imported and {npu_path.name} present: the NPU will be used{forced}",
        npu_path,
        cpu_path,
    )


def plan_runtime(bundle: Bundle, which: Which, runtime: RuntimeConfig) -> tuple[str, str]:
    """(device, reason in words) for one encoder, loading no model; a forced NPU that cannot work raises."""
    plan = _plan(bundle, which, runtime)
    return plan.device, plan.reason


def _warn(line: str, on_warning: OnWarning | None) -> None:
    logger.warning(line)
    if on_warning is not None:
        on_warning(line)


def _open_cpu(
    bundle: Bundle, which: Which, cpu_path: Path | None, runtime: RuntimeConfig, probe: TextProbe | None = None
) -> Session:
    from photoindex.inference.sessions.ort import OrtSession

    if cpu_path is None:
        raise ModelError(
            f"bundle {bundle.manifest.name} has no ONNX model for the {which} encoder: no CPU fallback",
            f"add a `{which}` file to the bundle's manifest, or run on the board's NPU",
        )
    # Batches of photos are split over the cores, one single-threaded run each (no thread ever waits
    # for another inside a run); a query's one text is spread over the cores instead.
    # A text model is run on a query's real tokens only where its short copy agrees on `probe`.
    return OrtSession(
        cpu_path, runtime.threads, cache_dir=runtime.model_cache_dir, parallel=which == "image", text_probe=probe
    )


def _wide_cpu(narrow: Session, cpu_path: Path | None, runtime: RuntimeConfig) -> Callable[[], Session] | None:
    """For the image encoder, whose runs take one core each: how to open the same model with one run
    over every core, for a batch too small to split (docs/indexing.md, "Keeping both cores busy").

    Only when `narrow` was loaded through the fast copy, whose weights are memory-mapped and shared
    by both sessions; without it a second session would hold a second copy of the weights, and
    small batches stay on one core. The opener raises if the copy is gone by the time it is called.
    """
    if cpu_path is None or runtime.threads != 0 or runtime.model_cache_dir is None:
        return None
    if getattr(narrow, "loaded_from", None) is None:
        return None
    path, cache = cpu_path, runtime.model_cache_dir

    def open_wide() -> Session:
        from photoindex.inference.sessions.ort import OrtSession

        wide = OrtSession(path, 0, cache_dir=cache)
        if wide.loaded_from is None:
            raise ModelError(f"{path}: its fast copy is gone; a second session would copy the weights")
        return wide

    return open_wide


def _short(exc: BaseException) -> str:
    return exc.message if isinstance(exc, ModelError) else f"{type(exc).__name__}: {exc}"


def _fall_back(
    bundle: Bundle,
    which: Which,
    runtime: RuntimeConfig,
    plan: _Plan,
    exc: BaseException,
    on_warning: OnWarning | None,
    probe: TextProbe | None = None,
) -> RuntimeChoice:
    """The CPU choice after the NPU failed to load, with its one warning line."""
    assert plan.npu_path is not None
    line = f"NPU failed to load {plan.npu_path.name} ({_short(exc)}): falling back to {_CPU}"
    session = _open_cpu(bundle, which, plan.cpu_path, runtime, probe)
    _warn(line, on_warning)
    assert plan.cpu_path is not None
    return RuntimeChoice(session, session.provider, "cpu", plan.cpu_path, line, (line,))


def _open(
    bundle: Bundle,
    which: Which,
    runtime: RuntimeConfig,
    on_warning: OnWarning | None,
    probe: TextProbe | None = None,
) -> tuple[RuntimeChoice, _Plan]:
    plan = _plan(bundle, which, runtime)
    if plan.device == "cpu":
        session = _open_cpu(bundle, which, plan.cpu_path, runtime, probe)
        assert plan.cpu_path is not None
        warnings: tuple[str, ...] = ()
        if plan.warning is not None:
            _warn(plan.warning, on_warning)
            warnings = (plan.warning,)
        return RuntimeChoice(session, session.provider, "cpu", plan.cpu_path, plan.reason, warnings), plan
    from photoindex.inference.sessions.npu import AxSession

    assert plan.npu_path is not None
    try:
        npu = AxSession(plan.npu_path)
    except ModelError as exc:
        if _mode(runtime, which) == "npu":
            raise
        return _fall_back(bundle, which, runtime, plan, exc, on_warning, probe), plan
    return RuntimeChoice(npu, npu.provider, "npu", plan.npu_path, plan.reason), plan


def open_runtime(bundle: Bundle, which: Which, runtime: RuntimeConfig) -> RuntimeChoice:
    """The session `[runtime] <which>` asks for; under "auto" a failed NPU load falls back to the CPU."""
    return _open(bundle, which, runtime, None)[0]


# --- encoders that fall back on a failed run -------------------------------------------------------


_E = TypeVar("_E", ImageEncoder, TextEncoder)


class _CpuSwitch(Generic[_E]):
    """The one-way switch from an NPU encoder to a CPU one: opened lazily, warned about once."""

    def __init__(
        self, npu_session: Session, open_cpu: Callable[[], _E], on_warning: OnWarning | None
    ) -> None:
        self._name = Path(str(getattr(npu_session, "path", "the NPU model"))).name
        self._open_cpu: Callable[[], _E] = open_cpu
        self._on_warning = on_warning
        self._lock = threading.Lock()
        self.cpu: _E | None = None
        self.warnings: list[str] = []

    def switch(self, exc: Exception) -> _E:
        """Open the CPU encoder after the NPU raised `exc` (once; later callers get the same one)."""
        with self._lock:
            if self.cpu is not None:  # another thread switched already: one warning only
                return self.cpu
            try:
                cpu = self._open_cpu()
            except ModelError as cpu_exc:
                raise ModelError(
                    f"NPU failed to run {self._name} ({_short(exc)}), and the CPU fallback cannot be opened: "
                    f"{cpu_exc.message}",
                    cpu_exc.hint,
                ) from exc
            line = f"NPU failed to run {self._name} ({_short(exc)}): falling back to {_CPU}"
            self.cpu = cpu
            self.warnings.append(line)
            _warn(line, self._on_warning)
            return cpu


class _FallsBack:
    """What both NPU encoders with a CPU fallback tell about it."""

    _fallback: _CpuSwitch[Any]

    @property
    def fell_back(self) -> bool:
        """Whether the NPU failed and the CPU does the work now."""
        return self._fallback.cpu is not None

    @property
    def warnings(self) -> list[str]:
        """The fallback warning line, once the NPU has failed to run."""
        return list(self._fallback.warnings)


class FallbackImageEncoder(_FallsBack, ImageEncoder):
    """An image encoder on the NPU that switches to the CPU, once and for good, when a run fails.

    Callers hand it decoded uint8 pixels before and after the switch; each encoder converts them
    to what its own model takes.
    """

    def __init__(
        self,
        session: Session,
        spec: ImageSpec,
        embedding_dim: int,
        open_cpu: Callable[[], ImageEncoder],
        on_warning: OnWarning | None = None,
    ) -> None:
        super().__init__(session, spec, embedding_dim)
        self._fallback = _CpuSwitch(session, open_cpu, on_warning)

    def encode(self, pixels: np.ndarray, *, open_wide: bool = True) -> np.ndarray:
        """Like ImageEncoder.encode; on the first NPU failure, warn once and use the CPU from then on."""
        pixels = np.asarray(pixels)
        cpu = self._fallback.cpu
        if cpu is None:
            # Only the NPU's own failures fall back; a caller's wrong pixels are an error on any device.
            self.check_pixels(pixels)
            try:
                return super().encode(pixels, open_wide=open_wide)
            except Exception as exc:
                cpu = self._fallback.switch(exc)
                self.provider = cpu.provider
        return cpu.encode(pixels, open_wide=open_wide)


class FallbackTextEncoder(_FallsBack, TextEncoder):
    """A text encoder on the NPU that switches to the CPU, once and for good, when a run fails."""

    def __init__(
        self,
        session: Session,
        tokenizer: Tokenizer,
        embedding_dim: int,
        open_cpu: Callable[[], TextEncoder],
        on_warning: OnWarning | None = None,
    ) -> None:
        super().__init__(session, tokenizer, embedding_dim)
        self._fallback = _CpuSwitch(session, open_cpu, on_warning)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Like TextEncoder.encode; on the first NPU failure, warn once and use the CPU from then on."""
        cpu = self._fallback.cpu
        if cpu is None:
            if isinstance(texts, str):
                return super().encode(texts)  # raises TypeError: a caller's mistake, not the NPU's
            try:
                return super().encode(texts)
            except Exception as exc:
                cpu = self._fallback.switch(exc)
                self.provider = cpu.provider
        return cpu.encode(texts)


def open_image_encoder(
    bundle: Bundle, runtime: RuntimeConfig, *, on_warning: OnWarning | None = None
) -> tuple[ImageEncoder, RuntimeChoice]:
    """The image encoder `[runtime] image` asks for, and the choice behind it.

    Under "auto" an NPU model that fails to load, or whose input the encoder cannot feed, falls
    back to the CPU now; one that fails to run falls back on its first failure. `on_warning` gets
    each fallback's one line when it happens (also logged on the "photoindex" logger).
    """
    m = bundle.manifest
    choice, plan = _open(bundle, "image", runtime, on_warning)

    def cpu_encoder(session: Session | None = None) -> ImageEncoder:
        narrow = session or _open_cpu(bundle, "image", plan.cpu_path, runtime)
        return ImageEncoder(narrow, m.image, m.embedding_dim, wide=_wide_cpu(narrow, plan.cpu_path, runtime))

    if choice.device == "cpu":
        return cpu_encoder(choice.session), choice
    if _mode(runtime, "image") == "npu":
        return ImageEncoder(choice.session, m.image, m.embedding_dim), choice
    try:
        encoder = FallbackImageEncoder(choice.session, m.image, m.embedding_dim, cpu_encoder, on_warning)
    except ModelError as exc:
        fallback = _fall_back(bundle, "image", runtime, plan, exc, on_warning)
        return cpu_encoder(fallback.session), fallback
    return encoder, choice


def open_text_encoder(
    bundle: Bundle,
    runtime: RuntimeConfig,
    tokenizer: Tokenizer,
    *,
    on_warning: OnWarning | None = None,
    warm: bool = False,
) -> tuple[TextEncoder, RuntimeChoice]:
    """The text encoder `[runtime] text` asks for, and the choice behind it (falling back as images do).

    `warm`: it will answer many queries (a long-lived process): on the CPU, loaded for speed per query
    rather than speed of loading (`shorttext.TextProbe.warm`).
    """
    from photoindex.inference.shorttext import TextProbe

    m = bundle.manifest
    probe = TextProbe.of(tokenizer, warm=warm)
    choice, plan = _open(bundle, "text", runtime, on_warning, probe)

    def cpu_encoder(session: Session | None = None) -> TextEncoder:
        return TextEncoder(
            session or _open_cpu(bundle, "text", plan.cpu_path, runtime, probe), tokenizer, m.embedding_dim
        )

    if choice.device == "cpu":
        return cpu_encoder(choice.session), choice
    if _mode(runtime, "text") == "npu":
        return TextEncoder(choice.session, tokenizer, m.embedding_dim), choice
    try:
        encoder = FallbackTextEncoder(choice.session, tokenizer, m.embedding_dim, cpu_encoder, on_warning)
    except ModelError as exc:
        fallback = _fall_back(bundle, "text", runtime, plan, exc, on_warning, probe)
        return cpu_encoder(fallback.session), fallback
    return encoder, choice


__all__ = [
    "FallbackImageEncoder",
    "FallbackTextEncoder",
    "RuntimeChoice",
    "open_image_encoder",
    "open_runtime",
    "open_text_encoder",
    "plan_runtime",
]
