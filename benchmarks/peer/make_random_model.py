#!/usr/bin/env python3
"""Build a random-weight stand-in for rclip 4.0.8's model directory.

Architecture: open_clip's own CLIP class (from the open_clip_torch wheel on PyPI), configured
with open_clip's ViT-B-32-256.json (vision ViT-B/32 @256px, width 768, 12 layers; text 12 layers,
width 512, 8 heads, 77 tokens, vocab 49408; 512-d embeddings), randomly initialised (no
pretrained weights). Exported the way rclip's upstream scripts/convert_model.py exports the real
checkpoint: fp32, input "input", output "output", dynamic batch axis, opset 18, dynamo=False,
torch MHA fast path disabled. The tokenizer vocabulary (bpe_simple_vocab_16e6.txt.gz) is the real
one shipped inside the open_clip_torch wheel.

usage: make_random_model.py OPEN_CLIP_SRC_DIR RCLIP_DATADIR
  OPEN_CLIP_SRC_DIR: the folder holding the unpacked wheel's open_clip/ package
"""

import gzip
import json
import shutil
import sys
import types
from pathlib import Path

import torch

MODEL_SUBDIR = "ViT-B-32-256-datacomp_s34b_b86k"  # rclip/model_download.py: MODEL_SUBDIR
LEGAL_FILES = ("LICENSE", "OPENAI-CLIP-MIT.txt", "README.md", "THIRD_PARTY_NOTICES.md")  # MODEL_LEGAL_FILES
IMAGE_SIZE = 256
CONTEXT_LENGTH = 77


def import_open_clip_model(src: Path):
  """Import open_clip.model without open_clip/__init__.py (which pulls torchvision for its image
  transforms). open_clip/utils.py imports torchvision.ops.misc.FrozenBatchNorm2d, used only to
  freeze ResNet batch norms; a placeholder stands in for it, and the ViT graph never touches it."""
  if "torchvision" not in sys.modules:
    tv = types.ModuleType("torchvision")
    ops = types.ModuleType("torchvision.ops")
    misc = types.ModuleType("torchvision.ops.misc")

    class FrozenBatchNorm2d(torch.nn.Module):  # never instantiated for ViT models
      pass

    misc.FrozenBatchNorm2d = FrozenBatchNorm2d  # type: ignore[attr-defined]
    tv.ops, ops.misc = ops, misc  # type: ignore[attr-defined]
    sys.modules.update({"torchvision": tv, "torchvision.ops": ops, "torchvision.ops.misc": misc})
  pkg = types.ModuleType("open_clip")
  pkg.__path__ = [str(src / "open_clip")]
  sys.modules["open_clip"] = pkg
  import open_clip.model as m  # noqa: E402

  return m


class Visual(torch.nn.Module):
  def __init__(self, visual):
    super().__init__()
    self.visual = visual

  def forward(self, inputs):
    return self.visual(inputs)


class Textual(torch.nn.Module):
  def __init__(self, clip):
    super().__init__()
    self.clip = clip

  def forward(self, inputs):
    return self.clip.encode_text(inputs)


def export(module, dummy, path: Path):
  torch.backends.mha.set_fastpath_enabled(False)
  torch.onnx.export(
    module,
    (dummy,),
    str(path),
    input_names=["input"],
    output_names=["output"],
    dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
    opset_version=18,
    dynamo=False,
  )


def main():
  src, datadir = Path(sys.argv[1]), Path(sys.argv[2])
  torch.manual_seed(0)
  m = import_open_clip_model(src)
  cfg = json.loads((src / "open_clip" / "model_configs" / "ViT-B-32-256.json").read_text())
  clip = m.CLIP(
    embed_dim=cfg["embed_dim"],
    vision_cfg=m.CLIPVisionCfg(**cfg["vision_cfg"]),
    text_cfg=m.CLIPTextCfg(**cfg["text_cfg"]),
  ).eval()
  n_vis = sum(p.numel() for p in clip.visual.parameters())
  n_all = sum(p.numel() for p in clip.parameters())
  print(f"random CLIP ViT-B-32-256: visual {n_vis / 1e6:.2f}M params, text {(n_all - n_vis) / 1e6:.2f}M params")

  out = datadir / MODEL_SUBDIR
  out.mkdir(parents=True, exist_ok=True)
  with torch.no_grad():
    export(Visual(clip.visual).eval(), torch.randn(1, 3, IMAGE_SIZE, IMAGE_SIZE), out / "visual.onnx")
    export(Textual(clip).eval(), torch.zeros(1, CONTEXT_LENGTH, dtype=torch.long), out / "textual.onnx")

  tok = datadir / "tokenizer"
  tok.mkdir(parents=True, exist_ok=True)
  shutil.copy2(src / "open_clip" / "bpe_simple_vocab_16e6.txt.gz", tok / "bpe_simple_vocab_16e6.txt.gz")
  with gzip.open(tok / "bpe_simple_vocab_16e6.txt.gz") as f:
    assert len(f.read().decode().split("\n")) > 48894

  note = (
    "PLACEHOLDER written by benchmarks/peer/make_random_model.py.\n"
    "The ONNX files in this folder are RANDOM-WEIGHT stand-ins with the architecture of OpenCLIP\n"
    "ViT-B-32-256 (not the datacomp_s34b_b86k checkpoint); for benchmarking only.\n"
  )
  for name in LEGAL_FILES:
    (datadir / name).write_text(note)
  (datadir / "RANDOM_WEIGHTS_NOT_A_REAL_MODEL.txt").write_text(note)

  # sanity check with onnxruntime if this interpreter has it (the rclip venv does)
  print(f"wrote {out}/visual.onnx ({(out / 'visual.onnx').stat().st_size / 1e6:.1f} MB), "
        f"textual.onnx ({(out / 'textual.onnx').stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
  main()
