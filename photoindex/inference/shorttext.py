"""Text models that read only a query's real tokens: the context axis made dynamic in a model copy.

A CLIP text model takes every query padded to its context (77 tokens), but a query is mostly 5 to
15 tokens long, and the padding costs nearly all of the time: ViT-B/32's text transformer takes
~70 ms for 77 tokens on two cores and ~20 ms for 8 (weights prepacked). For the models CLIP ships, the padding cannot
change the answer: attention is causal (a token sees only the tokens before it) and the vector is
read at the end-of-text token, or the padding is masked out. So `rewrite` makes a copy of the graph
in which every constant sized by the context (the positional embedding, the causal mask, the
reshape targets of the attention) is cut to the length of the input, and `TextEncoder` feeds it the
ids up to the last non-padding token of the batch (docs/search.md, "Query text").

Whether the copy computes what the model computes is never assumed: `agrees` runs the copy on
probe queries at full length (where every cut constant is whole, so the copy *is* the model) and
cut to their own lengths, and the copy is used only if every vector agrees within cosine 0.99999.
A model whose padding does change its answer (a bidirectional model with no padding mask) fails
that check and keeps running at full length; so does any graph this rewrite does not understand.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from photoindex.inference.tokenizers import Tokenizer

logger = logging.getLogger("photoindex")

# The queries a short copy is checked on before use: a short and a long one, so the cut lengths
# differ (4 and 16 tokens with CLIP's BPE) and, run together, the short one has padding inside.
# The graph sees token ids only, so what matters is the lengths, not the language; plain ASCII is
# tokenized without importing ftfy. Two rather than more: whoever checks (the indexer at its end,
# the daemon at start, else the first search) runs each probe at the model's full length.
PROBE_TEXTS = (
    "a dog",
    "a red car parked on a long street at night next to the river",
)
AGREEMENT = 0.99999  # the least cosine between a vector of the copy and the model's own


@dataclass(frozen=True)
class TextProbe:
    """What a text session needs to make and check its short copy: the model's context, and the probe
    queries' ids [N, context], made only when a copy is checked (tokenizing Chinese imports ftfy).

    `warm`: the session will answer many queries (the daemon, `serve`): it is loaded optimized and
    with its weights prepacked, a second copy of the MatMul weights (~150 MB for ViT-B/32's text
    model) that halves each query (~50 to ~24 ms at 9 tokens); a one-shot search loads unoptimized
    and unpacked, which is quicker to load than to gain back in one query (docs/search.md).
    """

    context: int
    ids: Callable[[], np.ndarray]
    warm: bool = False

    @classmethod
    def of(cls, tokenizer: Tokenizer, *, warm: bool = False) -> TextProbe:
        """The probe of a text model read by `tokenizer`: `PROBE_TEXTS`, tokenized when first needed."""
        return cls(tokenizer.context_length, lambda: np.asarray(tokenizer(list(PROBE_TEXTS))), warm)


_FLOAT_TYPES = (1, 10, 11, 16)  # TensorProto FLOAT, FLOAT16, DOUBLE, BFLOAT16
_INT_TYPES = (6, 7)  # TensorProto INT32, INT64


def used_length(ids: np.ndarray) -> int:
    """Columns of `ids` [N, context] up to the last non-padding (non-zero) id of any row; at least 1."""
    used = np.flatnonzero(ids.any(axis=0))
    return int(used[-1]) + 1 if used.size else 1


def _schema() -> Any:
    """ONNX's protobuf classes (`onnx_ml_pb2`) without the `onnx` package's own import.

    `import onnx` imports ml_dtypes, whose extension takes ~1.3 CPU s to start (measured here): more
    than the rest of a text model's copy. The generated schema module needs only protobuf, so it is
    loaded from the installed package's file under a name of its own; a process that imports `onnx`
    later registers the same file again, which protobuf allows.
    """
    import importlib.util
    import sys

    name = "photoindex._onnx_ml_pb2"
    if name in sys.modules:
        return sys.modules[name]
    found = importlib.util.find_spec("onnx")
    if found is None or not found.submodule_search_locations:
        raise ImportError("the onnx package is not installed")
    path = Path(next(iter(found.submodule_search_locations))) / "onnx_ml_pb2.py"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    sys.modules[name] = module
    return module


def _int_values(pb: Any, tensor: Any) -> np.ndarray:
    """The values of a small integer TensorProto (INT32 or INT64), raw or typed."""
    dtype = "<i8" if tensor.data_type == pb.TensorProto.INT64 else "<i4"
    if tensor.raw_data:
        values = np.frombuffer(tensor.raw_data, dtype=dtype)
    else:
        values = np.asarray(list(tensor.int64_data if dtype == "<i8" else tensor.int32_data), dtype=dtype)
    return values.reshape(tuple(tensor.dims))


def rewrite(model: Path, out: Path, context: int) -> bool:
    """Write to `out` a copy of `model` whose token axis is dynamic; False if the graph offers nothing to cut.

    `model` may keep its weights in a side file (modelcache's layout): only the graph is read and
    written, and `out` must sit in the same folder so it finds the same side file. Needs the `onnx`
    package's schema; without it, or for any graph this does not understand, no copy is written.
    """
    try:
        pb = _schema()
    except ImportError as exc:
        logger.info("%s: no short-query copy (%s)", model, exc)
        return False
    proto = pb.ModelProto()
    proto.ParseFromString(model.read_bytes())
    g = proto.graph
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), 0)
    ids = [
        i for i in g.input
        if i.type.tensor_type.elem_type in _INT_TYPES
        and [d.dim_value for d in i.type.tensor_type.shape.dim][1:] == [context]
    ]
    if opset < 10 or len(ids) != 1 or any(n.op_type in ("If", "Loop", "Scan") for n in g.node):
        return False
    source = ids[0]

    def node(op: str, inputs: list[str], output: str, **ints: int) -> Any:
        made = pb.NodeProto(op_type=op, input=inputs, output=[output])
        for key, value in ints.items():
            made.attribute.add(name=key, type=pb.AttributeProto.INT, i=value)
        return made

    def const(name: str, values: list[int]) -> Any:
        data = np.asarray(values, dtype="<i8")
        tensor = pb.TensorProto(dims=data.shape, data_type=pb.TensorProto.INT64, raw_data=data.tobytes())
        made = pb.NodeProto(op_type="Constant", output=[name])
        made.attribute.add(name="value", type=pb.AttributeProto.TENSOR, t=tensor)
        return made

    # `__tokens` is the input's length as a 1-element int64 tensor; `__tokens_scalar` the same as a scalar.
    front = [
        node("Shape", [source.name], "__tokens_shape"),
        const("__one", [1]),
        const("__two", [2]),
        node("Slice", ["__tokens_shape", "__one", "__two"], "__tokens"),
        const("__scalar_shape", []),
        node("Reshape", ["__tokens", "__scalar_shape"], "__tokens_scalar"),
    ]
    renamed: dict[str, str] = {}
    after: dict[str, list[Any]] = {}  # nodes to insert right after the float Constant they cut
    dropped: set[str] = set()

    def cut_axes(name: str, shape: list[int], serial: int) -> list[Any]:
        axes = [i for i, d in enumerate(shape) if d == context]
        prefix = f"__cut{serial}"
        renamed[name] = f"{prefix}_out"
        return [
            const(f"{prefix}_axes", axes),
            const(f"{prefix}_starts", [0] * len(axes)),
            node("Concat", ["__tokens"] * len(axes), f"{prefix}_ends", axis=0),
            node("Slice", [name, f"{prefix}_starts", f"{prefix}_ends", f"{prefix}_axes"], f"{prefix}_out"),
        ]

    def cut_ints(name: str, values: np.ndarray, serial: int, int64: bool) -> list[Any]:
        prefix = f"__cut{serial}"
        if values.ndim == 0:
            made = "__tokens_scalar"
            nodes: list[Any] = []
        else:
            parts, nodes = [], []
            for k, v in enumerate(values.tolist()):
                if v == context:
                    parts.append("__tokens")
                else:
                    nodes.append(const(f"{prefix}_{k}", [v]))
                    parts.append(f"{prefix}_{k}")
            made = f"{prefix}_i64"
            nodes.append(node("Concat", parts, made, axis=0))
        if not int64:
            nodes.append(node("Cast", [made], f"{prefix}_out", to=pb.TensorProto.INT32))
            made = f"{prefix}_out"
        renamed[name] = made
        return nodes

    serial = 0
    for t in g.initializer:
        if context in t.dims and t.data_type in _FLOAT_TYPES:
            front += cut_axes(t.name, list(t.dims), serial)
            serial += 1
    for n in g.node:
        if n.op_type != "Constant" or len(n.attribute) != 1 or n.attribute[0].name != "value":
            continue
        tensor = n.attribute[0].t
        if tensor.data_type in _FLOAT_TYPES and context in tensor.dims:
            after[n.output[0]] = cut_axes(n.output[0], list(tensor.dims), serial)
            serial += 1
        elif tensor.data_type in _INT_TYPES and len(tensor.dims) <= 1:
            values = _int_values(pb, tensor)
            if values.size <= 8 and context in values.reshape(-1).tolist():
                front += cut_ints(n.output[0], values, serial, tensor.data_type == pb.TensorProto.INT64)
                dropped.add(n.output[0])
                serial += 1
    if not renamed or any(o.name in renamed for o in g.output):
        return False
    nodes = list(front)
    for n in g.node:
        for k, name in enumerate(n.input):
            if name in renamed:
                n.input[k] = renamed[name]
        if n.op_type == "Constant" and n.output[0] in dropped:
            continue  # an integer constant replaced whole (its new value is made in `front`)
        nodes.append(n)
        for name in n.output:
            nodes += after.get(name, [])
    del g.node[:]
    g.node.extend(nodes)
    source.type.tensor_type.shape.dim[1].dim_param = "tokens"
    for output in g.output:
        for dim in output.type.tensor_type.shape.dim:
            if dim.HasField("dim_value") and dim.dim_value == context:
                dim.dim_param = "tokens"
    del g.value_info[:]  # shapes recorded for 77 tokens; ONNX Runtime infers them again
    out.write_bytes(proto.SerializeToString())
    return True


def agrees(run: Callable[[np.ndarray], np.ndarray], probe: np.ndarray, batch: int | None = None) -> bool:
    """Whether `run` (the short copy) gives the same vectors for `probe` [N, context] ids at full and cut length.

    At full length every cut constant is whole, so that run is the original model's answer. Each
    probe is also run alone at its own length, and all together at the longest one (padding inside).
    `batch`: the model's static batch, if it has one (runs are then padded to it, as the encoder does).
    A vector that is not finite is a disagreement.
    """

    def vectors(ids: np.ndarray) -> np.ndarray:
        if batch is None:
            return _unit(run(ids))
        rows = [
            run(np.concatenate([ids[k : k + batch], np.repeat(ids[-1:], max(0, k + batch - len(ids)), axis=0)]))
            for k in range(0, len(ids), batch)
        ]
        return _unit(np.concatenate(rows)[: len(ids)])

    full = vectors(probe)
    cut = np.concatenate([vectors(probe[k : k + 1, : used_length(probe[k : k + 1])]) for k in range(len(probe))])
    together = vectors(probe[:, : used_length(probe)])
    least = float(min(np.min(np.sum(full * cut, axis=1)), np.min(np.sum(full * together, axis=1))))
    if not np.isfinite(full).all() or not least >= AGREEMENT:  # NaN compares False both ways
        logger.info("the short-query copy disagrees with its model (cosine %.6f): full length kept", least)
        return False
    return True


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
