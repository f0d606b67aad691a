"""ONNX Runtime on the CPU behind the `Session` protocol (`sessions/base.py`)."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from photoindex.errors import ConfigError, ModelError
from photoindex.inference import modelcache
from photoindex.inference.sessions.base import FixedSpecs, TensorSpec

if TYPE_CHECKING:
    from photoindex.inference.shorttext import TextProbe

logger = logging.getLogger("photoindex")


# ONNX Runtime names its tensor types as strings; the encoders work with numpy dtypes.
_ORT_DTYPES: dict[str, np.dtype] = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(double)": np.dtype(np.float64),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(int8)": np.dtype(np.int8),
    "tensor(uint16)": np.dtype(np.uint16),
    "tensor(int16)": np.dtype(np.int16),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(uint32)": np.dtype(np.uint32),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(uint64)": np.dtype(np.uint64),
    "tensor(bool)": np.dtype(np.bool_),
}

_VERIFY_HINT = (
    "run `photoindex models verify` to check the bundle, and `photoindex models fetch` to replace bad files"
)


def _ort_spec(arg: Any, path: Path) -> TensorSpec:
    dtype = _ORT_DTYPES.get(arg.type)
    if dtype is None:
        raise ModelError(
            f"{path}: tensor `{arg.name}` has type {arg.type}, which photoindex cannot feed or read",
            "use an export whose inputs and outputs are numeric tensors",
        )
    # Symbolic ("batch"), unknown (None) and non-positive dims are all dynamic axes.
    shape = tuple(d if isinstance(d, int) and d > 0 else None for d in (arg.shape or ()))
    return TensorSpec(name=arg.name, shape=shape, dtype=dtype)


def cores() -> int:
    """The cores this process may run on (its CPU affinity where the platform tells it)."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # macOS has no sched_getaffinity
        return os.cpu_count() or 1


class OrtSession(FixedSpecs):
    """A model file run by ONNX Runtime on the CPU, behind the `Session` protocol.

    `parallel_runs` is how many `run` calls the caller should make at once to use the machine: 1
    for a session whose every run spreads over the cores (`threads` 0 or more than 1), the number of
    cores for one made with `parallel=True` and `threads` 0, whose runs each take one core. ONNX
    Runtime's `run` may be called from several threads at once.
    """

    parallel_runs: int
    trims_tokens: bool  # a text model that takes a query's ids cut after its last real token

    def __init__(
        self,
        path: Path,
        threads: int = 0,
        cache_dir: Path | None = None,
        *,
        parallel: bool = False,
        text_probe: TextProbe | None = None,
    ) -> None:
        """Load `path`; with `cache_dir`, through its fast-loading copy there (made on first use).

        `parallel` with `threads` 0 gives each run one thread and asks for one run per core
        (docs/indexing.md, "Keeping both cores busy"); an explicit `threads` count always wins.
        `text_probe`: `path` is a text model; the copy's short-query graph is used if it agrees with
        the model on the probe's queries (`shorttext.py`).
        """
        import onnxruntime as ort  # imported here so the CLI's --help does not load it

        self.path = Path(path)
        if threads < 0:
            raise ConfigError(f"inference threads must be 0 (automatic) or more, got {threads}")
        self.parallel_runs = 1
        if parallel and threads == 0 and cores() > 1:
            self.parallel_runs, threads = cores(), 1
        if not self.path.is_file():
            raise ModelError(
                f"{self.path}: model file not found", "run `photoindex models fetch` to download it"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        # Batches are one graph at a time; parallel execution only adds thread contention on small boards.
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle ORT threads would spin-wait for work, burning the cores the decode workers need
        # (measured: about 10% more photos/s end to end on 2 cores without spinning).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        # Prepacked weights are a second copy of every MatMul weight: 200 MB more for ViT-B/32,
        # with no measurable speed-up here (43 vs 44 images/s at batch 16).
        # (A text session that answers many queries prepacks: see `TextProbe.warm`.)
        warm_text = text_probe is not None and text_probe.warm
        options.add_session_config_entry("session.disable_prepacking", "0" if warm_text else "1")
        self.trims_tokens = False
        context = None if text_probe is None else text_probe.context
        self.loaded_from = self._fast_copy(ort, cache_dir, context) if cache_dir is not None else None
        if self.loaded_from is not None and text_probe is not None:
            self._load_short(ort, options, text_probe)
        if self.loaded_from is not None and not self.trims_tokens:
            try:
                self._session = ort.InferenceSession(
                    str(self.loaded_from), sess_options=options, providers=["CPUExecutionProvider"]
                )
            except Exception as exc:  # a damaged copy: drop it, load the bundle's own file
                logger.info("%s: cannot load its fast copy %s (%s)", self.path, self.loaded_from, exc)
                modelcache.discard(self.loaded_from)
                self.loaded_from = None
        if self.loaded_from is None:
            try:
                self._session = ort.InferenceSession(
                    str(self.path), sess_options=options, providers=["CPUExecutionProvider"]
                )
            # ORT raises its own exception classes (Fail, InvalidProtobuf, NoSuchFile...) with no common base.
            except Exception as exc:
                raise ModelError(
                    f"{self.path}: ONNX Runtime cannot load the model: {exc}", _VERIFY_HINT
                ) from exc
        self.provider = f"onnxruntime:{self._session.get_providers()[0]}"
        self._inputs = [_ort_spec(a, self.path) for a in self._session.get_inputs()]
        self._outputs = [_ort_spec(a, self.path) for a in self._session.get_outputs()]

    def _fast_copy(self, ort: Any, cache_dir: Path, text_context: int | None) -> Path | None:
        copy = modelcache.lookup(self.path, cache_dir, ort.__version__)
        if copy is not None:
            return copy
        return modelcache.make(self.path, cache_dir, ort.__version__, text_context=text_context)

    def _load_short(self, ort: Any, options: Any, probe: TextProbe) -> None:
        """Load the copy's short-query graph instead of its full one if it agrees with the model."""
        from photoindex.inference import shorttext

        copy = self.loaded_from
        assert copy is not None
        found = modelcache.short_copy(copy)
        if found is None or found[1] is False:
            return
        short, verdict = found
        if verdict is None and not modelcache.begin_check(copy):
            return
        # For one query, unoptimized: ORT_ENABLE_ALL's passes over the attention's shape arithmetic
        # cost more at load than they save in one run (rclip's text model: load 0.14-0.22 s against
        # 0.24-0.35 s, a run ~50 ms either way). A warm session keeps them (`TextProbe.warm`).
        if not probe.warm:
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            session = ort.InferenceSession(str(short), sess_options=options, providers=["CPUExecutionProvider"])
            if verdict is None:
                spec = _ort_spec(session.get_inputs()[0], self.path)
                verdict = shorttext.agrees(
                    lambda ids: session.run(None, {spec.name: np.ascontiguousarray(ids, dtype=spec.dtype)})[0],
                    np.asarray(probe.ids()),
                    spec.static_batch,
                )
                modelcache.record_verdict(copy, verdict)
        except (MemoryError, OSError) as exc:  # says nothing of the graph: the full one now, checked again later
            logger.info("%s: short-query copy not used this time (%s)", self.path, exc)
            modelcache.abandon_check(copy)
            verdict = False
        except Exception as exc:  # a graph ONNX Runtime refuses or cannot run: the full one, for good
            logger.info("%s: cannot use its short-query copy %s (%s)", self.path, short, exc)
            modelcache.record_verdict(copy, False)
            verdict = False
        if not verdict:
            options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        else:
            self._session = session
            self.loaded_from = short
            self.trims_tokens = True

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the model on the CPU; every output is returned, in declaration order."""
        try:
            return list(self._session.run(None, feeds))
        except Exception as exc:
            raise ModelError(f"{self.path}: inference failed: {exc}", _VERIFY_HINT) from exc

    def __repr__(self) -> str:
        return f"OrtSession({str(self.path)!r}, provider={self.provider!r})"
