"""Generated model bundles with the contracts of Axera's CLIP export (docs/models.md), for tests and benchmarks.

Two kinds share the bundle layout, file names, tensor names, dtypes and shapes of the real thing:

- `toy`: tiny graphs with known meaning. An image embeds its average colour (a sharp softmax over
  `COLOURS` in the first dimensions, plus a few dimensions of the exact shade), and a text whose
  ids contain a colour word's token embeds that colour's direction; other texts get a fixed
  neutral direction. So a search for "red" must rank red photos first.
- `vit-b32`: random weights with the real compute cost (ViT-B/32 image tower, 12-layer width-512
  text transformer), for benchmarks.

`onnx` is a test-time dependency; it is imported inside the builders only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from photoindex.inference.bundle import MANIFEST_NAME, ImageSpec
from photoindex.inference.download import file_sha256
from photoindex.resources import data_file

if TYPE_CHECKING:
    import onnx

Kind = Literal["toy", "vit-b32"]
NpuLayout = Literal[None, "nhwc-uint8", "nchw-float32"]
Flavour = Literal["axera", "open_clip"]

OPSET = 17
# IR 8 is what opset 17 was released with: old ONNX Runtime builds on boards still load it.
IR_VERSION = 8
EMBEDDING_DIM = 512

# The toy's known colours, far enough apart that a photo of one never averages to another.
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (210, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 70, 200),
    "yellow": (230, 210, 40),
    "orange": (240, 140, 30),
    "purple": (130, 50, 170),
    "pink": (240, 150, 190),
    "brown": (120, 75, 35),
    "white": (240, 240, 240),
    "black": (20, 20, 20),
    "gray": (128, 128, 128),
}

# The words a toy text model recognises per colour, by tokenizer kind (each is one token).
COLOUR_WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "clip-bpe": {
        "red": ("red",),
        "green": ("green",),
        "blue": ("blue",),
        "yellow": ("yellow",),
        "orange": ("orange",),
        "purple": ("purple",),
        "pink": ("pink",),
        "brown": ("brown",),
        "white": ("white",),
        "black": ("black",),
        "gray": ("gray", "grey"),
    },
    "bert-chinese": {
        "red": ("红",),
        "green": ("绿",),
        "blue": ("蓝",),
        "yellow": ("黄",),
        "orange": ("橙",),
        "purple": ("紫",),
        "pink": ("粉",),
        "brown": ("棕",),
        "white": ("白",),
        "black": ("黑",),
        "gray": ("灰",),
    },
}

_CONTEXT = {"clip-bpe": 77, "bert-chinese": 52}
_CLIP_VOCAB = 49408
_SPEC = ImageSpec(size=224)  # mean/std and the rest exactly as models/clip-vit-b32.toml
_OPEN_CLIP_SIZE = 256  # like rclip's open_clip ViT-B-32-256 export

# Toy image model constants: how sharply a shade snaps to its nearest colour, and how much of the
# exact shade survives in the extra dimensions (enough to tell shades apart, far below a colour).
_SHARPNESS = 200.0
_SHADE_WEIGHT = 0.15
_DETAIL_WEIGHT = 0.01
_IMAGE_SCALE = 4.0  # image_features are deliberately not unit length, as Axera's are not
_TOY_SEED = 20240601
_VIT_SEED = 1234


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "photoindex.testing needs the `onnx` package: pip install 'photoindex[test]'"
        ) from exc
    return onnx


@dataclass
class _Graph:
    """A small builder over onnx.helper: nodes with generated names, numpy initializers."""

    nodes: list[Any] = field(default_factory=list)
    initializers: list[Any] = field(default_factory=list)
    _count: int = 0

    def _name(self, hint: str) -> str:
        self._count += 1
        return f"{hint}_{self._count}"

    def const(self, value: np.ndarray | Sequence[Any] | float, hint: str = "c") -> str:
        """Add an initializer; plain Python numbers become float32 tensors, int lists int64."""
        onnx = _onnx()
        arr = np.asarray(value)
        if arr.dtype == np.float64:
            arr = arr.astype(np.float32)
        name = self._name(hint)
        # Not np.ascontiguousarray: it turns 0-d arrays into 1-d, and a scalar Gather index must stay 0-d.
        self.initializers.append(onnx.numpy_helper.from_array(np.array(arr, order="C"), name))
        return name

    def op(self, op_type: str, *inputs: str, output: str | None = None, **attrs: Any) -> str:
        """Add a one-output node and return its output name."""
        onnx = _onnx()
        out = output or self._name(op_type.lower())
        self.nodes.append(onnx.helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def model(self, inputs: list[Any], outputs: list[Any], name: str) -> onnx.ModelProto:
        """Wrap the nodes into a checked model at `OPSET`."""
        onnx = _onnx()
        graph = onnx.helper.make_graph(self.nodes, name, inputs, outputs, initializer=self.initializers)
        model = onnx.helper.make_model(
            graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)], producer_name="photoindex.testing"
        )
        model.ir_version = IR_VERSION
        onnx.checker.check_model(model)
        return model


def _value(name: str, elem: str, shape: Sequence[int | str]) -> Any:
    onnx = _onnx()
    types = {
        "float32": onnx.TensorProto.FLOAT,
        "uint8": onnx.TensorProto.UINT8,
        "int32": onnx.TensorProto.INT32,
        "int64": onnx.TensorProto.INT64,
    }
    return onnx.helper.make_tensor_value_info(name, types[elem], list(shape))


def _save(model: Any, path: Path) -> None:
    onnx = _onnx()
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


# --- feature_matmul.onnx -------------------------------------------------------------------------


def make_feature_matmul(path: Path, embedding_dim: int = EMBEDDING_DIM) -> None:
    """Write `feature_matmul.onnx` as docs/models.md defines it.

    logits_per_image = softmax(100 * norm(image_features) @ text_features.T, axis=1) and
    logits_per_text = softmax(logits.T, axis=1); only the image side is normalized.
    """
    g = _Graph()
    norm = g.op("ReduceL2", "image_features", axes=[1], keepdims=1)
    img = g.op("Div", "image_features", norm)
    txt_t = g.op("Transpose", "text_features", perm=[1, 0])
    logits = g.op("Mul", g.op("MatMul", img, txt_t), g.const(np.float32(100.0)))
    g.op("Softmax", logits, axis=1, output="logits_per_image")
    g.op("Softmax", g.op("Transpose", logits, perm=[1, 0]), axis=1, output="logits_per_text")
    model = g.model(
        [
            _value("image_features", "float32", ["n_img", embedding_dim]),
            _value("text_features", "float32", ["n_txt", embedding_dim]),
        ],
        [
            _value("logits_per_image", "float32", ["n_img", "n_txt"]),
            _value("logits_per_text", "float32", ["n_txt", "n_img"]),
        ],
        "feature_matmul",
    )
    _save(model, Path(path))


# --- image front ends: what the encoder graph takes, down to normalized float32 NCHW --------------


def _image_input(
    g: _Graph, name: str, layout: str, batch: int | str, size: int, spec: ImageSpec
) -> tuple[Any, str]:
    """The graph input and the name of the normalized NCHW float32 tensor the tower starts from."""
    if layout == "nchw-float32":
        return _value(name, "float32", [batch, 3, size, size]), name
    # Axera's 2023 NPU build: RGB bytes in NHWC, normalization compiled into the model.
    x = g.op("Cast", name, to=_onnx().TensorProto.FLOAT)
    x = g.op("Mul", x, g.const(np.float32(1.0 / 255.0)))
    x = g.op("Transpose", x, perm=[0, 3, 1, 2])
    mean = np.asarray(spec.mean, dtype=np.float32).reshape(1, 3, 1, 1)
    std = np.asarray(spec.std, dtype=np.float32).reshape(1, 3, 1, 1)
    x = g.op("Div", g.op("Sub", x, g.const(mean)), g.const(std))
    return _value(name, "uint8", [batch, size, size, 3]), x


# --- the toy -------------------------------------------------------------------------------------


def _toy_weights(dim: int) -> dict[str, np.ndarray]:
    """Fixed directions: one per colour, shade dimensions, a neutral text direction."""
    k = len(COLOURS)
    rng = np.random.default_rng(_TOY_SEED)
    colours = np.zeros((k, dim), dtype=np.float32)
    colours[np.arange(k), np.arange(k)] = 1.0
    shade = np.zeros((3, dim), dtype=np.float32)
    shade[np.arange(3), k + np.arange(3)] = _SHADE_WEIGHT
    # A small fixed projection of the shade into the rest, so vectors look like real embeddings.
    shade[:, k + 3 :] = rng.standard_normal((3, dim - k - 3)).astype(np.float32) * _DETAIL_WEIGHT
    neutral = np.zeros(dim, dtype=np.float32)
    neutral[k + 3 :] = rng.standard_normal(dim - k - 3).astype(np.float32)
    neutral /= np.linalg.norm(neutral)
    centres = np.asarray(list(COLOURS.values()), dtype=np.float32) / 255.0
    return {"colours": colours, "shade": shade, "neutral": neutral, "centres": centres}


def _toy_image_model(
    *, input_name: str, output_name: str, layout: str, batch: int | str, size: int, spec: ImageSpec
) -> Any:
    g = _Graph()
    w = _toy_weights(EMBEDDING_DIM)
    graph_input, x = _image_input(g, input_name, layout, batch, size, spec)
    # Back to RGB in [0, 1]: mean over the frame first, then undo the (affine) normalization.
    rgb = g.op("ReduceMean", x, axes=[2, 3], keepdims=0)
    rgb = g.op("Add", g.op("Mul", rgb, g.const(np.asarray(spec.std))), g.const(np.asarray(spec.mean)))
    # Squared distance to each colour centre: |rgb|^2 - 2 rgb.c + |c|^2, then a sharp softmax.
    centres = w["centres"]
    sq = g.op("ReduceSumSquare", rgb, axes=[1], keepdims=1)
    dot = g.op("MatMul", rgb, g.const(centres.T.copy()))
    dist = g.op(
        "Add", g.op("Sub", sq, g.op("Mul", dot, g.const(np.float32(2.0)))), g.const((centres**2).sum(1))
    )
    probs = g.op("Softmax", g.op("Mul", dist, g.const(np.float32(-_SHARPNESS))), axis=1)
    colour = g.op("MatMul", probs, g.const(w["colours"]))
    shade = g.op("MatMul", g.op("Sub", rgb, g.const(np.float32(0.5))), g.const(w["shade"]))
    g.op("Mul", g.op("Add", colour, shade), g.const(np.float32(_IMAGE_SCALE)), output=output_name)
    return g.model(
        [graph_input], [_value(output_name, "float32", [batch, EMBEDDING_DIM])], "toy_image_encoder"
    )


def _colour_token_ids(tokenizer: str) -> tuple[np.ndarray, np.ndarray]:
    """Token ids of every colour word and the colour index each one names."""
    from photoindex.inference.tokenizers import load_tokenizer

    tok = load_tokenizer(tokenizer, _CONTEXT[tokenizer])
    names = list(COLOURS)
    ids: list[int] = []
    owners: list[int] = []
    for colour, words in COLOUR_WORDS[tokenizer].items():
        for word in words:
            pieces = tok.encode(word)
            if len(pieces) != 1:
                raise ValueError(
                    f"colour word {word!r} is {len(pieces)} tokens for {tokenizer}; the toy needs one"
                )
            ids.append(pieces[0])
            owners.append(names.index(colour))
    return np.asarray(ids, dtype=np.int64), np.asarray(owners, dtype=np.int64)


def _toy_text_model(
    *, tokenizer: str, input_name: str, output_name: str, id_dtype: str, normalize: bool, batch: int | str
) -> Any:
    g = _Graph()
    w = _toy_weights(EMBEDDING_DIM)
    ids, owners = _colour_token_ids(tokenizer)
    context = _CONTEXT[tokenizer]
    # [N, L, 1] == [T] -> [N, L, T]: which colour tokens occur anywhere in each text.
    x = g.op("Unsqueeze", input_name, g.const(np.asarray([2], dtype=np.int64)))
    hits = g.op("Equal", x, g.const(ids.astype(id_dtype)))
    hits = g.op("ReduceMax", g.op("Cast", hits, to=_onnx().TensorProto.FLOAT), axes=[1], keepdims=0)
    colour = g.op("MatMul", hits, g.const(w["colours"][owners]))
    # No colour named: a fixed neutral direction instead of a zero vector.
    count = g.op("ReduceSum", hits, g.const(np.asarray([1], dtype=np.int64)), keepdims=1)
    none = g.op("Relu", g.op("Sub", g.const(np.float32(1.0)), count))
    feats = g.op("Add", colour, g.op("Mul", none, g.const(w["neutral"][None, :])))
    if normalize:
        norm = g.op("ReduceL2", feats, axes=[1], keepdims=1)
        g.op("Div", feats, norm, output=output_name)
    else:
        # open_clip exports return unnormalized vectors; a scale makes sure callers normalize.
        g.op("Mul", feats, g.const(np.float32(3.0)), output=output_name)
    return g.model(
        [_value(input_name, id_dtype, [batch, context])],
        [_value(output_name, "float32", [batch, EMBEDDING_DIM])],
        "toy_text_encoder",
    )


# --- vit-b32: random weights, real cost ----------------------------------------------------------


def _normal(rng: np.random.Generator, shape: tuple[int, ...], std: float) -> np.ndarray:
    return (rng.standard_normal(shape, dtype=np.float32) * np.float32(std)).astype(np.float32, copy=False)


def _layer_norm(g: _Graph, x: str, width: int) -> str:
    return g.op(
        "LayerNormalization",
        x,
        g.const(np.ones(width, dtype=np.float32)),
        g.const(np.zeros(width, dtype=np.float32)),
        axis=-1,
        epsilon=1e-5,
    )


def _block(g: _Graph, rng: np.random.Generator, x: str, width: int, heads: int, mask: str | None) -> str:
    """One pre-LN residual attention block as in CLIP: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""
    head_dim = width // heads
    # Residual branches are scaled down so 12 blocks keep activations of order one.
    std_in, std_out = width**-0.5, (width**-0.5) * 0.5
    h = _layer_norm(g, x, width)
    qkv = g.op(
        "Add",
        g.op("MatMul", h, g.const(_normal(rng, (width, 3 * width), std_in))),
        g.const(np.zeros(3 * width, np.float32)),
    )
    split = g.const(np.asarray([width, width, width], dtype=np.int64))
    q, k, v = (g._name(n) for n in ("q", "k", "v"))
    g.nodes.append(_onnx().helper.make_node("Split", [qkv, split], [q, k, v], axis=-1))
    to_heads = g.const(np.asarray([0, 0, heads, head_dim], dtype=np.int64))
    q = g.op("Transpose", g.op("Reshape", q, to_heads), perm=[0, 2, 1, 3])
    k = g.op("Transpose", g.op("Reshape", k, to_heads), perm=[0, 2, 3, 1])
    v = g.op("Transpose", g.op("Reshape", v, to_heads), perm=[0, 2, 1, 3])
    scores = g.op("Mul", g.op("MatMul", q, k), g.const(np.float32(head_dim**-0.5)))
    if mask is not None:
        scores = g.op("Add", scores, mask)
    attn = g.op("MatMul", g.op("Softmax", scores, axis=-1), v)
    attn = g.op(
        "Reshape",
        g.op("Transpose", attn, perm=[0, 2, 1, 3]),
        g.const(np.asarray([0, 0, width], dtype=np.int64)),
    )
    attn = g.op(
        "Add",
        g.op("MatMul", attn, g.const(_normal(rng, (width, width), std_out))),
        g.const(np.zeros(width, np.float32)),
    )
    x = g.op("Add", x, attn)
    h = _layer_norm(g, x, width)
    h = g.op(
        "Add",
        g.op("MatMul", h, g.const(_normal(rng, (width, 4 * width), std_in))),
        g.const(np.zeros(4 * width, np.float32)),
    )
    # QuickGELU, as OpenAI CLIP: x * sigmoid(1.702 x).
    h = g.op("Mul", h, g.op("Sigmoid", g.op("Mul", h, g.const(np.float32(1.702)))))
    h = g.op(
        "Add",
        g.op("MatMul", h, g.const(_normal(rng, (4 * width, width), (4 * width) ** -0.5 * 0.5))),
        g.const(np.zeros(width, np.float32)),
    )
    return g.op("Add", x, h)


def _vit_image_model(
    *, input_name: str, output_name: str, layout: str, batch: int | str, size: int, spec: ImageSpec
) -> Any:
    """ViT-B/32: 32x32 patches to width 768, class token, 12 blocks of 12 heads, ln_post, 768->512."""
    width, layers, heads, patch = 768, 12, 12, 32
    grid = size // patch
    rng = np.random.default_rng(_VIT_SEED)  # same seed, same weights for the .onnx and the .axmodel
    g = _Graph()
    graph_input, x = _image_input(g, input_name, layout, batch, size, spec)
    x = g.op(
        "Conv",
        x,
        g.const(_normal(rng, (width, 3, patch, patch), (3 * patch * patch) ** -0.5)),
        kernel_shape=[patch, patch],
        strides=[patch, patch],
    )
    x = g.op(
        "Transpose",
        g.op("Reshape", x, g.const(np.asarray([0, width, grid * grid], dtype=np.int64))),
        perm=[0, 2, 1],
    )
    # The class token, broadcast to the (possibly dynamic) batch: shape [N, 1, width].
    n = g.op(
        "Slice", g.op("Shape", x), g.const(np.asarray([0], np.int64)), g.const(np.asarray([1], np.int64))
    )
    cls_shape = g.op("Concat", n, g.const(np.asarray([1, width], dtype=np.int64)), axis=0)
    cls = g.op("Expand", g.const(_normal(rng, (1, 1, width), width**-0.5)), cls_shape)
    x = g.op("Concat", cls, x, axis=1)
    x = g.op("Add", x, g.const(_normal(rng, (grid * grid + 1, width), 0.02)))
    x = _layer_norm(g, x, width)  # ln_pre
    for _ in range(layers):
        x = _block(g, rng, x, width, heads, mask=None)
    x = g.op("Gather", x, g.const(np.asarray(0, dtype=np.int64)), axis=1)
    x = _layer_norm(g, x, width)  # ln_post
    g.op("MatMul", x, g.const(_normal(rng, (width, EMBEDDING_DIM), width**-0.5)), output=output_name)
    return g.model(
        [graph_input], [_value(output_name, "float32", [batch, EMBEDDING_DIM])], "vit_b32_image_encoder"
    )


def _vit_text_model(
    *,
    tokenizer: str,
    input_name: str,
    output_name: str,
    id_dtype: str,
    normalize: bool,
    batch: int | str,
    layers: int = 12,
) -> Any:
    """CLIP's text transformer: 12 causal blocks of width 512 and 8 heads, pooled at EOT (argmax id).

    With the BERT tokenizer the vocabulary is BERT-Chinese's and pooling takes [CLS] (position 0)
    without a causal mask, as Chinese-CLIP's text tower does. `layers`: fewer blocks, for tests of
    the graph's shape rather than its cost.
    """
    width, heads = 512, 8
    context = _CONTEXT[tokenizer]
    bert = tokenizer == "bert-chinese"
    vocab = (
        sum(1 for _ in open(data_file("bert_chinese_vocab.txt"), encoding="utf-8")) if bert else _CLIP_VOCAB
    )
    rng = np.random.default_rng(_VIT_SEED + 1)
    g = _Graph()
    x = g.op("Gather", g.const(_normal(rng, (vocab, width), 0.02)), input_name, axis=0)
    x = g.op("Add", x, g.const(_normal(rng, (context, width), 0.01)))
    mask = None if bert else g.const(np.triu(np.full((context, context), -1e9, dtype=np.float32), k=1))
    for _ in range(layers):
        x = _block(g, rng, x, width, heads, mask=mask)
    x = _layer_norm(g, x, width)  # ln_final
    if bert:
        x = g.op("Gather", x, g.const(np.asarray(0, dtype=np.int64)), axis=1)
    else:
        # EOT has the largest id in CLIP's vocabulary, so argmax over ids finds it (padding is 0).
        eot = g.op("ArgMax", g.op("Cast", input_name, to=_onnx().TensorProto.INT64), axis=1, keepdims=1)
        x = g.op("GatherND", x, eot, batch_dims=1)
    x = g.op("MatMul", x, g.const(_normal(rng, (width, EMBEDDING_DIM), width**-0.5)))
    if normalize:
        g.op("Div", x, g.op("ReduceL2", x, axes=[1], keepdims=1), output=output_name)
    else:
        g.op("Identity", x, output=output_name)
    return g.model(
        [_value(input_name, id_dtype, [batch, context])],
        [_value(output_name, "float32", [batch, EMBEDDING_DIM])],
        "text_encoder",
    )


def make_text_model(
    path: Path, kind: Kind = "vit-b32", *, tokenizer: str = "clip-bpe", layers: int = 12
) -> Path:
    """Write only the text encoder a bundle of `kind` would hold (Axera's names: `texts` int32 ids in,
    normalized `text_features` out); cheaper than a whole bundle for tests of the text model alone.
    `layers`: the ViT text transformer's blocks (12 as ViT-B/32; fewer for quick tests of its graph)."""
    axera = {"input_name": "texts", "output_name": "text_features", "id_dtype": "int32"}
    if kind == "toy":
        model = _toy_text_model(tokenizer=tokenizer, batch="batch", normalize=True, **axera)
    else:
        model = _vit_text_model(tokenizer=tokenizer, batch="batch", layers=layers, normalize=True, **axera)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _save(model, path)
    return path


# --- bundles -------------------------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def _write_manifest(
    out: Path, top: dict[str, Any], image: dict[str, Any], text: dict[str, Any], files: list[dict[str, Any]]
) -> None:
    lines = ["# Generated by photoindex.testing.make_bundle: random or toy weights, real contracts."]
    lines += [f"{k} = {_toml_value(v)}" for k, v in top.items()]
    lines += ["", "[image]"] + [f"{k} = {_toml_value(v)}" for k, v in image.items()]
    lines += ["", "[text]"] + [f"{k} = {_toml_value(v)}" for k, v in text.items()]
    for f in files:
        lines += ["", "[[files]]"] + [f"{k} = {_toml_value(v)}" for k, v in f.items()]
    (out / MANIFEST_NAME).write_text("\n".join(lines) + "\n", encoding="utf-8")


def make_bundle(
    out: Path,
    kind: Kind = "toy",
    *,
    tokenizer: str = "clip-bpe",
    npu_layout: NpuLayout = None,
    name: str | None = None,
    flavour: Flavour = "axera",
) -> Path:
    """Write a complete bundle folder (models + manifest.toml with sha256s) that `resolve_bundle` loads.

    `flavour="axera"` follows Axera's demo bundle (image_encoder.onnx `images` -> `image_features`,
    text_encoder.onnx `texts` int32 -> normalized `text_features`, feature_matmul.onnx).
    `flavour="open_clip"` follows rclip's open_clip export instead (visual.onnx / textual.onnx, both
    inputs named `input`, int64 ids, 256x256 images, unnormalized text output).
    `npu_layout` adds `image_encoder.axmodel`: an ONNX file with a static batch of 1, taking uint8
    NHWC RGB (normalization inside, Axera's 2023 build) or normalized float32 NCHW (2025 builds),
    for the test stand-in of axengine.
    """
    if kind not in ("toy", "vit-b32"):
        raise ValueError(f"unknown bundle kind {kind!r}; use 'toy' or 'vit-b32'")
    if tokenizer not in _CONTEXT:
        raise ValueError(f"unknown tokenizer {tokenizer!r}; use one of {', '.join(_CONTEXT)}")
    if npu_layout not in (None, "nhwc-uint8", "nchw-float32"):
        raise ValueError(f"unknown npu_layout {npu_layout!r}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    axera = flavour == "axera"
    size = _SPEC.size if axera else _OPEN_CLIP_SIZE
    spec = ImageSpec(size=size)
    image_model = _toy_image_model if kind == "toy" else _vit_image_model
    text_model = _toy_text_model if kind == "toy" else _vit_text_model
    img_in, img_out = ("images", "image_features") if axera else ("input", "output")
    txt_in, txt_out = ("texts", "text_features") if axera else ("input", "output")
    image_file, text_file = (
        ("image_encoder.onnx", "text_encoder.onnx") if axera else ("visual.onnx", "textual.onnx")
    )

    files: list[tuple[str, str, bool]] = []  # (role, name, optional)
    _save(
        image_model(
            input_name=img_in, output_name=img_out, layout="nchw-float32", batch="batch", size=size, spec=spec
        ),
        out / image_file,
    )
    files.append(("image", image_file, False))
    if npu_layout is not None:
        axmodel = image_model(
            input_name=img_in, output_name=img_out, layout=npu_layout, batch=1, size=size, spec=spec
        )
        _save(axmodel, out / "image_encoder.axmodel")
        files.append(("image-npu", "image_encoder.axmodel", True))
    _save(
        text_model(
            tokenizer=tokenizer,
            input_name=txt_in,
            output_name=txt_out,
            id_dtype="int32" if axera else "int64",
            normalize=axera,
            batch="batch",
        ),
        out / text_file,
    )
    files.append(("text", text_file, False))
    if axera:
        make_feature_matmul(out / "feature_matmul.onnx")
        files.append(("matmul", "feature_matmul.onnx", True))

    suffix = "" if tokenizer == "clip-bpe" else f"-{tokenizer}"
    flavour_suffix = "" if axera else "-open-clip"
    bundle_name = name or f"{kind}{suffix}{flavour_suffix}"
    _write_manifest(
        out,
        {
            "name": bundle_name,
            "title": f"photoindex.testing {kind} bundle ({tokenizer}, {flavour})",
            "model_id": f"photoindex-testing/{kind}{suffix}{flavour_suffix}-v1",
            "embedding_dim": EMBEDDING_DIM,
        },
        {
            "size": spec.size,
            "resize": spec.resize,
            "interpolation": spec.interpolation,
            "mean": list(spec.mean),
            "std": list(spec.std),
            "normalized_output": False,
        },
        {"tokenizer": tokenizer, "context_length": _CONTEXT[tokenizer], "normalized_output": axera},
        [
            {
                "role": role,
                "name": fname,
                "sha256": file_sha256(out / fname),
                "size": (out / fname).stat().st_size,
                **({"optional": True} if optional else {}),
            }
            for role, fname, optional in files
        ],
    )
    return out
