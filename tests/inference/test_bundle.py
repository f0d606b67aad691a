"""Manifests are checked when read: a bad value or a file that is not UTF-8 is a ModelError, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import runner

from photoindex.cli.app import app
from photoindex.errors import ModelError
from photoindex.inference.bundle import read_manifest, shipped_manifests


def _manifest(tmp_path: Path, replace: tuple[str, str] | None = None) -> Path:
    text = shipped_manifests()["clip-vit-b32"].read_text(encoding="utf-8")
    if replace:
        assert replace[0] in text
        text = text.replace(replace[0], replace[1], 1)
    folder = tmp_path / "bundle"
    folder.mkdir(exist_ok=True)
    path = folder / "manifest.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("embedding_dim = 512", 'embedding_dim = "x"', "embedding_dim = 'x' is not a whole number of at least 1"),
        ("embedding_dim = 512", "embedding_dim = 0", "embedding_dim = 0 is not a whole number of at least 1"),
        ("size = 224", "size = 22.4", "[image] size = 22.4 is not a whole number"),
        ("context_length = 77", "context_length = true", "[text] context_length = True is not a whole number"),
        ('tokenizer = "clip-bpe"', 'tokenizer = "gpt"', "'gpt' is not one of clip-bpe, bert-chinese"),
    ],
)
def test_a_bad_manifest_value_is_a_model_error(tmp_path: Path, old: str, new: str, message: str) -> None:
    path = _manifest(tmp_path, (old, new))
    with pytest.raises(ModelError) as info:
        read_manifest(path)
    assert message in info.value.message and str(path) in info.value.message


def test_a_manifest_that_is_not_utf8_is_a_model_error(tmp_path: Path) -> None:
    path = _manifest(tmp_path)
    path.write_bytes(b"# \xff\xfe\n" + path.read_bytes())
    with pytest.raises(ModelError, match=r"line 1: not UTF-8 text \(byte 0xff\)"):
        read_manifest(path)


def test_the_cli_says_what_is_wrong_with_the_manifest(tmp_path: Path, home_env: dict[str, str]) -> None:
    path = _manifest(tmp_path, ("embedding_dim = 512", 'embedding_dim = "x"'))
    result = runner.invoke(app, ["models", "verify", str(path.parent)])
    assert result.exit_code == 1, result.output
    assert "error:" in result.output and "embedding_dim" in result.output and "Traceback" not in result.output


def test_every_shipped_manifest_still_reads() -> None:
    for path in shipped_manifests().values():
        read_manifest(path)


def test_an_unknown_relative_bundle_names_the_folder_it_looked_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 11 item 10: after `cd photos` the toy demo said only "unknown model bundle 'toy'"."""
    from photoindex.inference.bundle import resolve_bundle

    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError) as info:
        resolve_bundle("toy", tmp_path / "models")
    assert f"no folder {tmp_path / 'toy'}" in info.value.message
    assert info.value.hint and "relative path is taken from the folder photoindex starts in" in info.value.hint
