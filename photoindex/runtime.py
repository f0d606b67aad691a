"""Inference runtimes behind one session protocol: ONNX Runtime on the CPU, axengine on the Axera NPU."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output: name, shape (None for a dynamic axis) and numpy dtype."""

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype

    @property
    def static_batch(self) -> int | None:
        """The compiled batch size, or None when the batch axis is dynamic."""
        return self.shape[0] if self.shape and isinstance(self.shape[0], int) else None


class Session(Protocol):
    """What an encoder needs from a runtime; every adapter is shaped like ONNX Runtime's session."""

    provider: str  # e.g. "onnxruntime:CPUExecutionProvider", "axengine:AxEngineExecutionProvider"

    @property
    def inputs(self) -> list[TensorSpec]: ...

    @property
    def outputs(self) -> list[TensorSpec]: ...

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the model; arrays must match the inputs' dtypes and (static) shapes."""
        ...
