"""Generated photos with rendered text (Latin, Chinese, mixed) for the OCR tests and the recall benchmark.

Text is drawn with a real font (Noto Sans CJK, Debian's `fonts-noto-cjk`, which `.ci/run` installs)
on a smooth or busy background, optionally rotated a little and small on a large photo, then saved
as JPEG, so the OCR reads real glyphs through real compression. Deterministic by seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_CANDIDATES = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",  # Arch, Fedora
    "/System/Library/Fonts/PingFang.ttc",
)

# Words for generated texts: English of 4+ letters and Chinese of 2+ characters, each used rarely
# enough that one word finds few photos (the recall benchmark asks for the photo in the top 5).
ENGLISH = (
    "harbor lantern velvet quarry meadow saddle falcon garnet timber cobalt walnut pepper thunder"
    " orchid beacon candle marble silver copper canyon glacier island jungle kettle ladder mirror"
    " napkin oyster parrot pillow rocket sailor tunnel violin window yellow zipper basket cactus"
    " dragon engine forest guitar hammer jacket kitten lemon magnet needle orange pencil rabbit"
    " salmon teapot turtle wallet anchor bridge castle desert feather garden helmet insect jigsaw"
    " koala ribbon spider tomato unicorn vacuum wizard breeze clover dolphin ember fiddle goblet"
    " hazel iris jasmine kernel lotus mango nectar olive pebble quill raven sphinx tulip umber"
    " vortex willow yarrow zenith amber bishop cinder donkey eagle fossil ginger hermit igloo jester"
    " kayak lizard mosaic noodle otter puzzle quartz rhythm saffron tractor urchin vessel walrus"
    " receipt ticket invoice station airport museum library bakery pharmacy market hotel garage"
    " starbucks tracking number parcel coffee bakery pizza theatre cinema stadium harvest lottery"
).split()
CHINESE = (
    "西湖 杭州 欢迎光临 北京 上海 长城 故宫 火车站 机场 地铁 医院 银行 超市 餐厅 咖啡 面包 书店 学校"
    " 图书馆 博物馆 公园 动物园 停车场 出口 入口 电梯 楼梯 厕所 禁止吸烟 小心地滑 营业时间 收银台 发票"
    " 快递 包裹 单号 手机 电脑 相机 茶叶 月饼 饺子 米饭 牛奶 苹果 香蕉 西瓜 葡萄 樱桃 草莓 熊猫 老虎"
    " 狮子 大象 长江 黄河 泰山 黄山 桂林 丽江 成都 重庆 广州 深圳 南京 苏州 西安 武汉 天津 青岛 大连"
    " 厦门 昆明 拉萨 春节 中秋 端午 元宵 新年快乐 生日快乐 恭喜发财 万事如意 身体健康 谢谢 再见 早安"
).split()


def font_path() -> Path | None:
    """The first CJK-capable font found on this machine, or None."""
    for candidate in FONT_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    return None


@dataclass(frozen=True)
class TextPhoto:
    """A generated photo and the words written on it."""

    path: Path
    words: tuple[str, ...]


def _background(rng: np.random.Generator, size: tuple[int, int], busy: bool) -> Image.Image:
    w, h = size
    base = rng.uniform(150, 235, size=3)
    if not busy:
        grad = np.linspace(-12, 12, w, dtype=np.float32)[None, :, None]
        array = np.clip(base[None, None, :] + grad + rng.normal(0, 3, (h, w, 3)), 0, 255)
        return Image.fromarray(array.astype(np.uint8))
    # Busy: random coloured shapes and lines over noise, like a street or a cluttered desk.
    array = np.clip(base[None, None, :] + rng.normal(0, 18, (h, w, 3)), 0, 255).astype(np.uint8)
    img = Image.fromarray(array)
    draw = ImageDraw.Draw(img)
    for _ in range(40):
        x0, y0 = int(rng.integers(0, w)), int(rng.integers(0, h))
        x1, y1 = x0 + int(rng.integers(20, w // 3 + 21)), y0 + int(rng.integers(20, h // 3 + 21))
        colour = tuple(int(c) for c in rng.integers(60, 255, 3))
        if rng.random() < 0.5:
            draw.rectangle((x0, y0, x1, y1), outline=colour, width=int(rng.integers(2, 8)))
        else:
            draw.ellipse((x0, y0, x1, y1), fill=colour)
    return img


def make_text_photo(
    path: Path,
    lines: Sequence[str],
    *,
    size: tuple[int, int] = (1200, 900),
    font_size: int = 64,
    angle: float = 0.0,
    busy: bool = False,
    plate: bool = True,
    seed: int = 0,
    quality: int = 90,
) -> TextPhoto:
    """Write `lines` in dark ink at a random place of a generated photo, on a light plate (a sign, a page, a
    label) or, with `plate=False`, straight on the background; returns the photo and its words."""
    font_file = font_path()
    if font_file is None:
        raise RuntimeError("no CJK font found: install Debian's fonts-noto-cjk (see .ci/run)")
    rng = np.random.default_rng(seed)
    img = _background(rng, size, busy)
    font = ImageFont.truetype(str(font_file), font_size)
    spacing = font_size // 3
    probe = ImageDraw.Draw(img)
    box = probe.multiline_textbbox((0, 0), "\n".join(lines), font=font, spacing=spacing)
    tw, th = int(box[2] - box[0]) + font_size, int(box[3] - box[1]) + font_size
    # The text sits on a light plate (a sign, a page, a label), which is then rotated into the photo.
    fill = (*(int(c) for c in rng.integers(225, 256, 3)), 255 if plate else 0)
    plate_img = Image.new("RGBA", (tw, th), fill)
    ink = tuple(int(c) for c in rng.integers(0, 60, 3))
    ImageDraw.Draw(plate_img).multiline_text(
        (font_size // 2 - box[0], font_size // 2 - box[1]), "\n".join(lines), font=font, fill=(*ink, 255),
        spacing=spacing,
    )
    if angle:
        plate_img = plate_img.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    x = int(rng.integers(0, max(1, size[0] - plate_img.width)))
    y = int(rng.integers(0, max(1, size[1] - plate_img.height)))
    img.paste(plate_img, (x, y), plate_img)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="JPEG", quality=quality)
    words = tuple(w for line in lines for w in line.split())
    return TextPhoto(path, words)


def make_text_set(folder: Path, count: int, *, seed: int = 0, size: tuple[int, int] = (1200, 900)) -> list[TextPhoto]:
    """`count` photos of 2-3 words each (English, Chinese or mixed; some rotated, some busy, some small text)."""
    rng = np.random.default_rng(seed)
    photos = []
    for i in range(count):
        kind = i % 3
        n = int(rng.integers(2, 4))
        if kind == 0:
            words = [str(w) for w in rng.choice(ENGLISH, n, replace=False)]
        elif kind == 1:
            words = [str(w) for w in rng.choice(CHINESE, n, replace=False)]
        else:
            words = [str(rng.choice(ENGLISH)), str(rng.choice(CHINESE))]
            if n == 3:
                words.append(str(rng.choice(ENGLISH)))
        lines = [" ".join(words[:2]), *([" ".join(words[2:])] if words[2:] else [])]
        if rng.random() < 0.5:
            lines = [w.upper() if w.isascii() and rng.random() < 0.5 else w for w in lines]
        photos.append(
            make_text_photo(
                folder / f"text-{i:04d}.jpg",
                lines,
                size=size,
                font_size=int(rng.integers(36, 90)),
                angle=float(rng.uniform(-6, 6)) if rng.random() < 0.4 else 0.0,
                busy=(busy := bool(rng.random() < 0.35)),
                plate=not busy or bool(rng.random() < 0.6),
                seed=seed * 100_003 + i,
            )
        )
    return photos
