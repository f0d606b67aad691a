"""`photoindex duplicates`: exact copies and near-duplicates (re-encoded, resized, cropped) come out as one
group, the photo with most pixels first; distinct photos do not; nothing is deleted.

The toy bundle embeds a photo by its colour (photoindex.testing.models), so "distinct" here means
another colour; the grouping itself (thresholds, union of pairs, order) is what is tested.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from helpers import cli, runner
from PIL import Image

from photoindex.cli.app import app
from photoindex.config import Config
from photoindex.search.duplicates import find_duplicates
from photoindex.testing.models import COLOURS
from photoindex.testing.photos import make_photo


def _album(root: Path) -> dict[str, Path]:
    orig = make_photo(root / "a" / "orig.jpg", COLOURS["red"], size=(640, 480), seed=7)
    im = Image.open(orig)
    p = {"orig": orig}
    p["reencoded"] = root / "a" / "reencoded.jpg"
    im.save(p["reencoded"], quality=40)
    p["resized"] = root / "a" / "resized.jpg"
    im.resize((320, 240)).save(p["resized"], quality=90)
    p["crop"] = root / "b" / "crop.jpg"
    p["crop"].parent.mkdir()
    im.crop((64, 48, 576, 432)).save(p["crop"], quality=90)
    p["copy"] = root / "b" / "copy.jpg"
    shutil.copy(orig, p["copy"])
    for i, colour in enumerate(["blue", "green", "yellow", "purple"]):
        p[colour] = make_photo(root / "c" / f"{colour}.jpg", COLOURS[colour], size=(640, 480), seed=20 + i)
    p["blue_copy"] = root / "c" / "blue copy.jpg"
    shutil.copy(p["blue"], p["blue_copy"])
    return p


def test_copies_reencodes_resizes_and_crops_group_together_and_distinct_photos_do_not(
    tmp_path: Path, config: Config
) -> None:
    root = tmp_path / "Photos"
    p = _album(root)
    cli("index", str(root))
    groups = cli("duplicates")
    assert len(groups) == 2
    near, exact = groups  # the largest group first
    paths = [h["path"] for h in near["photos"]]
    # Most pixels first, then the larger file: the original (or its byte copy) leads.
    assert set(paths) == {str(p[k]) for k in ("orig", "copy", "reencoded", "resized", "crop")}
    assert set(paths[:2]) == {str(p["orig"]), str(p["copy"])} and paths[2] == str(p["reencoded"])
    assert paths[3:] == [str(p["crop"]), str(p["resized"])]
    assert not near["exact"] and near["photos"][1]["same_content"] and not near["photos"][2]["same_content"]
    assert near["reclaimable"] == sum(Path(x).stat().st_size for x in paths[1:])
    assert all(h["score"] >= 0.95 for h in near["photos"])
    assert exact["exact"] and {h["path"] for h in exact["photos"]} == {str(p["blue"]), str(p["blue_copy"])}
    # Nothing was deleted.
    assert all(path.exists() for path in p.values())
    # Only under a folder: the crop and the copy in b/ (a byte copy and a near one).
    (only_b,) = find_duplicates(config, folder=root / "b")
    assert {h.path for h in only_b.photos} == {str(p["crop"]), str(p["copy"])}
    assert find_duplicates(config, folder=root / "c" / "green.jpg") == []
    # The table names the groups.
    shown = runner.invoke(app, ["duplicates"])
    assert shown.exit_code == 0
    assert "group 1: 5 near-duplicates" in shown.stdout and "group 2: 2 exact copies" in shown.stdout


@pytest.mark.parametrize("value", ["0", "1.5", "nan"])
def test_a_bad_threshold_is_an_error_naming_the_option(config: Config, value: str) -> None:
    result = runner.invoke(app, ["duplicates", "--threshold", value])
    assert result.exit_code == 1 and "error: --threshold" in result.stderr


def test_duplicates_after_a_model_switch_says_the_photos_are_not_encoded_yet(
    config: Config, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """'no duplicates' alone would be wrong: the new model has not encoded anything yet."""
    from photoindex.testing.models import make_bundle

    _album(tmp_path / "photos")
    cli("index", str(tmp_path / "photos"))
    other = make_bundle(tmp_path / "other", tokenizer="bert-chinese", name="other")
    monkeypatch.setenv("PHOTOINDEX_MODEL_BUNDLE", str(other))
    result = runner.invoke(app, ["duplicates"])
    assert result.exit_code == 0 and "not encoded for model" in result.stderr


@pytest.mark.parametrize(
    ("folder", "message"),
    [("FOLDER/nonexistent", "--folder FOLDER/nonexistent: no such folder"), ("", "--folder: empty")],
)
def test_a_folder_that_does_not_exist_or_is_empty_is_an_error_not_no_duplicates(
    tmp_path: Path, config: Config, folder: str, message: str
) -> None:
    """A mistyped folder must not read as a folder without duplicates; '' must not mean the current folder."""
    root = tmp_path / "Photos"
    _album(root)
    cli("index", str(root))
    result = runner.invoke(app, ["duplicates", "--folder", folder.replace("FOLDER", str(root))])
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: " + message.replace("FOLDER", str(root))) and "hint: " in result.stderr
    assert "no duplicates" not in result.output
