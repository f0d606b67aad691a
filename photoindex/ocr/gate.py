"""The CLIP gate: read a photo only when its CLIP vector says it may hold text worth reading.

Most photos (people, landscapes, pets) hold no text, and reading one costs about a second on a
2-core CPU. The photo's stored CLIP vector is compared, zero-shot, with prompts that describe
text-bearing pictures and with prompts for the usual other subjects; the share of the text
prompts in the softmax (at CLIP's logit scale, 100) is the gate's score, and a photo is read when
it reaches `[ocr] gate_threshold`. With random-weight test models the score means nothing: the
tests check the wiring and test reading quality with `gate = "all"` (docs/ocr.md, "The gate").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from photoindex.library import Library

TEXT_PROMPTS: dict[str, tuple[str, ...]] = {
    "en": (
        "a photo of a document", "a screenshot", "a photo of a sign", "a photo of a receipt",
        "a photo of a presentation slide", "a photo of a page of text", "a photo of a poster",
        "a photo of a menu", "a photo of a whiteboard with writing", "a photo of a label with text",
        "a photo of a street sign", "a photo of a shop front with its name", "a photo of a ticket",
    ),
    "zh": (
        "一张文件的照片", "手机截图", "一张招牌的照片", "一张收据的照片", "一张幻灯片的照片", "一页文字",
        "一张海报", "一张菜单的照片", "写满字的白板", "带文字的标签", "路牌", "商店招牌", "一张票据",
    ),
}
OTHER_PROMPTS: dict[str, tuple[str, ...]] = {
    "en": (
        "a photo of a person", "a photo of people", "a photo of a landscape", "a photo of an animal",
        "a photo of food", "a photo of a building", "a photo of a room", "a photo of a car",
        "a photo of flowers", "a photo of the sky", "a photo of the beach", "a photo of a city street",
    ),
    "zh": (
        "一张人的照片", "一群人", "风景照", "动物的照片", "食物的照片", "建筑的照片", "房间的照片",
        "汽车的照片", "花的照片", "天空", "海滩", "城市街道",
    ),
}
LOGIT_SCALE = 100.0


class Gate:
    """Scores stored CLIP vectors against the prompts; the prompt vectors are encoded once per process."""

    def __init__(
        self, lib: Library, threshold: float, prompts: tuple[Sequence[str], Sequence[str]] | None = None
    ) -> None:
        """Encode the prompts (text-bearing, other) with the library's text encoder; by default the shipped
        ones, in Chinese for a Chinese tokenizer."""
        lang = "zh" if lib.bundle.manifest.text.tokenizer == "bert-chinese" else "en"
        texts, others = prompts or (TEXT_PROMPTS[lang], OTHER_PROMPTS[lang])
        vectors = lib.text_encoder().encode([*texts, *others])
        self.prompts = np.asarray(vectors, dtype=np.float32)
        self.text_count = len(texts)
        self.threshold = threshold

    def score(self, vector: np.ndarray) -> float:
        """The text prompts' share of the softmax over all prompts, for one image vector (normalized here)."""
        v = np.asarray(vector, dtype=np.float32)
        v = v / max(float(np.linalg.norm(v)), 1e-12)
        logits = LOGIT_SCALE * (self.prompts @ v)
        weights = np.exp(logits - logits.max())
        return float(weights[: self.text_count].sum() / weights.sum())

    def passes(self, score: float) -> bool:
        """Whether a photo with this score is read."""
        return score >= self.threshold
