"""The session protocol every runtime adapter follows (shaped like ONNX Runtime's session), and its tensor specs."""

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


class FixedSpecs:
    """`inputs` and `outputs` of a session whose specs are fixed when it is made (kept in `_inputs`, `_outputs`)."""

    _inputs: list[TensorSpec]
    _outputs: list[TensorSpec]

    @property
    def inputs(self) -> list[TensorSpec]:
        """The model's inputs (a copy: callers cannot change the session's)."""
        return list(self._inputs)

    @property
    def outputs(self) -> list[TensorSpec]:
        """The model's outputs, in the order `run` returns them."""
        return list(self._outputs)
