"""Where matched words sit in a photo (ocr/highlight.py): boxes within the boxes of the lines read."""

from __future__ import annotations

import pytest

from photoindex.ocr.highlight import word_boxes

LINE = {"text": "STARBUCKS RECEIPT 2024", "confidence": 0.98, "box": [[100, 50], [320, 50], [320, 80], [100, 80]]}


def test_a_word_gets_the_stretch_of_its_line_its_characters_take() -> None:
    (box,) = word_boxes([LINE], ["RECEIPT"])
    assert box.word == "RECEIPT" and box.line == 0
    # 20 letters and 2 spaces (half a letter each): 21 units over 220 px; RECEIPT takes units 9.5-16.5.
    left, right = 100 + 220 * 9.5 / 21, 100 + 220 * 16.5 / 21
    assert [c for point in box.box for c in point] == pytest.approx([left, 50, right, 50, right, 80, left, 80])


def test_words_match_as_the_words_search_does_regardless_of_case_and_width() -> None:
    lines = [{"text": "ｓｔａｒｂｕｃｋｓ receipt", "box": [[0, 0], [100, 0], [100, 10], [0, 10]]}]
    (box,) = word_boxes(lines, ["STARBUCKS"])
    # Full-width letters are drawn twice as wide: 9 of them (18 units) of 18 + 0.5 + 7 units.
    assert box.box[0] == (0.0, 0.0) and box.box[1][0] == pytest.approx(100 * 18 / 25.5)


def test_chinese_characters_weigh_twice_a_latin_letter() -> None:
    lines = [{"text": "杭州西湖 ok", "box": [[0, 0], [105, 0], [105, 20], [0, 20]]}]
    (box,) = word_boxes(lines, ["西湖"])
    # 4 CJK characters (8 units), a space (0.5) and two letters (2): 西湖 takes units 4-8 of 10.5.
    assert box.box[0][0] == pytest.approx(40.0) and box.box[1][0] == pytest.approx(80.0)


def test_a_slanted_line_gives_a_slanted_box_and_every_occurrence_counts() -> None:
    slanted = {"text": "ab ab", "box": [[0, 0], [50, 10], [48, 20], [-2, 10]]}
    boxes = word_boxes([slanted], ["AB"])
    assert len(boxes) == 2
    first, second = boxes
    assert first.box[0] == (0.0, 0.0) and first.box[1] == pytest.approx((50 * 2 / 4.5, 10 * 2 / 4.5))
    assert second.box[1] == pytest.approx((50.0, 10.0)) and second.box[2] == pytest.approx((48.0, 20.0))


def test_lines_without_a_box_and_words_not_there_give_nothing() -> None:
    assert word_boxes([{"text": "RECEIPT", "box": None}], ["RECEIPT"]) == []
    assert word_boxes([{"text": "RECEIPT", "box": [[0, 0], [1, 1]]}], ["RECEIPT"]) == []
    assert word_boxes([LINE], ["invoice"]) == []
    assert word_boxes([LINE], []) == []
    assert word_boxes([LINE, LINE], ["2024"])[1].line == 1
