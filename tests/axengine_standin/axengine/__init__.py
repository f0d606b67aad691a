"""TEST STAND-IN for pyaxengine's `axengine` module. This is NOT pyaxengine and must never be installed.

photoindex's tests put `tests/axengine_standin` on `sys.path` to exercise the NPU code path on
machines without an Axera NPU. The stand-in enforces pyaxengine's contract as docs/models.md describes
it, strictly, so code that passes here does not trip the real runtime:

- importing prints the available providers to stdout (from Python, and from "C" through fd 1);
- without the driver (`AXENGINE_STANDIN_NO_DRIVER=1`) importing raises ImportError, as pyaxengine
  does when neither libax_engine nor libaxcl_rt is found;
- `InferenceSession(path_or_bytes, sess_options=None, providers=None, provider_options=None)`;
  every model shape must be static (compiled .axmodel files are);
- `get_inputs()` / `get_outputs()` return NodeArgs with `.name`, `.shape` (list of ints) and
  `.dtype` (a numpy dtype); `get_providers()` returns a str, not a list;
- `run(None, feeds)` asserts every input is present with exactly the compiled shape and dtype
  (no casting, so float64 or int64 fail), and returns outputs that ALIAS one buffer per output,
  overwritten by the next run (as builds before 0.1.3rc1 do): callers must copy;
- a session has one set of IO buffers and no lock: a run that overlaps another on the same
  session raises, so callers must serialize.

It computes with ONNX Runtime on the CPU: the toy bundles' `image_encoder.axmodel` is really an
ONNX file with a static batch of 1 (`photoindex.testing.make_bundle(..., npu_layout=...)`), so the
results are checkable against the CPU path. Failure injection through the environment:
`AXENGINE_STANDIN_FAIL_LOAD=1` (InferenceSession raises), `AXENGINE_STANDIN_FAIL_RUN=1` (run raises).
`RUN_CALLS` counts runs, `BATCHES_SEEN` records the batch axis of every fed input.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np

axengine_provider_name = "AxEngineExecutionProvider"
axclrt_provider_name = "AXCLRTExecutionProvider"
__version__ = "0.0.0+photoindex.test.standin"

if os.environ.get("AXENGINE_STANDIN_NO_DRIVER") == "1":
    # pyaxengine's own message when the driver libraries are missing.
    raise ImportError(
        "No providers found. Please make sure you have installed one of the following: "
        f"{[axengine_provider_name, axclrt_provider_name]}"
    )

import onnxruntime as _ort  # noqa: E402  (only once the "driver" is known to be present)

_available_providers = [axengine_provider_name]
# pyaxengine prints this on import; the second line stands for a print from the C library.
print("[INFO] Available providers: ", _available_providers)
os.write(1, b"[INFO] axengine stand-in: C-level provider banner on fd 1\n")

_ORT_DTYPES: dict[str, np.dtype] = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(int64)": np.dtype(np.int64),
}

RUN_CALLS = 0
BATCHES_SEEN: list[int] = []


def get_all_providers() -> list[str]:
    """Every provider pyaxengine knows."""
    return [axengine_provider_name, axclrt_provider_name]


def get_available_providers() -> list[str]:
    """The providers usable here (the stand-in plays the on-board engine)."""
    return list(_available_providers)


class NodeArg:
    """An input or output: name, shape (list of ints) and dtype (a numpy dtype)."""

    def __init__(self, name: str, dtype: np.dtype, shape: list[int]) -> None:
        self.name = name
        self.dtype = dtype
        self.shape = shape


class SessionOptions:
    """Accepted and ignored, like most of pyaxengine's options."""


class InferenceSession:
    """A compiled model with static shapes and one set of IO buffers (not thread-safe)."""

    def __init__(
        self,
        path_or_bytes: str | bytes | os.PathLike[str],
        sess_options: SessionOptions | None = None,
        providers: str | list[Any] | None = None,
        provider_options: list[dict[Any, Any]] | None = None,
    ) -> None:
        if providers is None:
            self._provider = _available_providers[0]
        else:
            wanted = (
                [providers]
                if isinstance(providers, str)
                else [p if isinstance(p, str) else p[0] for p in providers]
            )
            usable = [p for p in wanted if p in _available_providers]
            if not usable:
                raise ValueError(f"Selected provider(s): {wanted} is(are) not available.")
            self._provider = usable[0]
        if os.environ.get("AXENGINE_STANDIN_FAIL_LOAD") == "1":
            raise RuntimeError("Failed to load model.")
        source = path_or_bytes if isinstance(path_or_bytes, bytes) else os.fspath(path_or_bytes)
        self._ort = _ort.InferenceSession(source, providers=["CPUExecutionProvider"])
        self._inputs = [self._node(a) for a in self._ort.get_inputs()]
        self._outputs = [self._node(a) for a in self._ort.get_outputs()]
        self._buffers = [np.zeros(o.shape, o.dtype) for o in self._outputs]
        self._busy = threading.Lock()

    @staticmethod
    def _node(arg: Any) -> NodeArg:
        shape = list(arg.shape)
        if not all(isinstance(d, int) and d > 0 for d in shape):
            raise RuntimeError(
                f"axengine stand-in: `{arg.name}` has a dynamic shape {shape}; .axmodel shapes are static"
            )
        return NodeArg(arg.name, _ORT_DTYPES[arg.type], shape)

    def get_providers(self) -> str:
        """The provider in use: a str, unlike ONNX Runtime's list."""
        return self._provider

    def get_inputs(self, shape_group: int = 0) -> list[NodeArg]:
        """The compiled inputs."""
        return list(self._inputs)

    def get_outputs(self, shape_group: int = 0) -> list[NodeArg]:
        """The compiled outputs."""
        return list(self._outputs)

    def run(
        self,
        output_names: list[str] | None,
        input_feed: dict[str, np.ndarray],
        run_options: object | None = None,
        shape_group: int = 0,
    ) -> list[np.ndarray]:
        """Run with exactly the compiled shapes and dtypes; outputs alias this session's buffers."""
        global RUN_CALLS
        if not self._busy.acquire(blocking=False):
            raise RuntimeError("axengine stand-in: run() overlapped another run() on the same session")
        try:
            for node in self._inputs:
                assert node.name in input_feed, f"model input {node.name} is missing"
                npy = input_feed[node.name]
                assert list(node.shape) == list(npy.shape) and node.dtype == npy.dtype, (
                    f"model inputs({node.name}) expect shape {node.shape} and dtype {node.dtype}, "
                    f"however gets input with shape {npy.shape} and dtype {npy.dtype}"
                )
                BATCHES_SEEN.append(int(npy.shape[0]))
            RUN_CALLS += 1
            if os.environ.get("AXENGINE_STANDIN_FAIL_RUN") == "1":
                raise RuntimeError("Failed to run model.")
            results = self._ort.run(None, {n.name: input_feed[n.name] for n in self._inputs})
            for buffer, result in zip(self._buffers, results, strict=True):
                np.copyto(buffer, result)
            return list(self._buffers)
        finally:
            self._busy.release()
