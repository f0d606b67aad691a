"""Settings are declared once (photoindex/config.py) and checked when read: type, range, where they came from."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
from helpers import runner

from photoindex.cli.app import app
from photoindex.config import Config, declared, example, load_config, sections
from photoindex.errors import ConfigError
from photoindex.resources import config_example

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def test_the_example_file_is_the_declaration() -> None:
    """config.example.toml is exactly what the declarations render (regenerate it with
    `python -m photoindex.config > config.example.toml` after adding a setting)."""
    assert config_example().read_text(encoding="utf-8") == example()


def test_the_example_file_parses_to_the_defaults(tmp_path: Path) -> None:
    data = tomllib.loads(config_example().read_text(encoding="utf-8"))
    for s in declared():
        value = data[s.section][s.name]
        assert (tuple(value) if isinstance(value, list) else value) == s.default, s.key
    assert set(data) == set(sections())
    loaded = load_config(config_file=config_example(), environ={}, home=tmp_path)
    defaults = load_config(environ={}, home=tmp_path)
    assert loaded.search == defaults.search and loaded.index == defaults.index and loaded.daemon == defaults.daemon


def test_every_setting_has_a_comment_and_a_checkable_type() -> None:
    for s in declared():
        assert s.kind in (str, int, float, bool, tuple), s.key
        assert s.rule.allows(s.default), f"{s.key}: its default is out of its own range"
    documented = {(s.section, s.name) for s in declared() if s.rule.doc}
    # [runtime] text shares the comment above [runtime] image
    assert {(s.section, s.name) for s in declared()} - documented == {("runtime", "text")}


def _bad(result_output: str) -> str:
    lines = [line for line in result_output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result_output
    return lines[0]


@pytest.mark.parametrize(
    ("section", "line", "key", "expected"),
    [
        ("index", 'backend = "annoy"', "backend", "one of faiss, numpy"),
        ("search", "limit = -5", "limit", "a whole number from 1 to 10000"),
        ("search", "limit = 0", "limit", "a whole number from 1 to 10000"),
        ("search", 'limit = "ten"', "limit", "a whole number"),
        ("search", "min_score = 2.5", "min_score", "a number from -1 to 1"),
        ("daemon", "settle_seconds = nan", "settle_seconds", "a number from 0 to 86400"),
        ("daemon", "poll_interval = inf", "poll_interval", "a number above 0"),
        ("scan", "include_hidden = 1", "include_hidden", "true or false"),
        ("scan", "extensions = [1, 2]", "extensions", "a list of strings"),
    ],
)
def test_a_bad_value_in_the_file_names_key_value_line_and_range(
    home_env: dict[str, str], tmp_path: Path, section: str, line: str, key: str, expected: str
) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(f"# mine\n[model]\nbundle = 'x'\n\n[{section}]\n{line}\n", encoding="utf-8")
    result = runner.invoke(app, ["--config", str(cfg), "status"])
    assert result.exit_code == 1, result.output
    error = _bad(result.output)
    value = line.split("=", 1)[1].strip().replace("'", '"')
    assert f"[{section}] {key} = {value}" in error
    assert f"{cfg} line 6" in error and expected in error
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("PHOTOINDEX_SEARCH_LIMIT", "-100", "a whole number from 1 to 10000"),
        ("PHOTOINDEX_INDEX_BATCH_SIZE", "0", "a whole number from 1 to 4096"),
        ("PHOTOINDEX_DAEMON_SETTLE_SECONDS", "nan", "a number from 0 to 86400"),
        ("PHOTOINDEX_INDEX_BACKEND", "annoy", "one of faiss, numpy"),
        ("PHOTOINDEX_RUNTIME_THREADS", "many", "a whole number of at least 0"),
        ("PHOTOINDEX_SEARCH_USE_DAEMON", "maybe", "true or false"),
    ],
)
def test_a_bad_environment_value_names_the_variable(
    home_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    result = runner.invoke(app, ["search", "red"])
    assert result.exit_code == 1, result.output
    error = _bad(result.output)
    section, key = variable[len("PHOTOINDEX_") :].lower().split("_", 1)
    assert f"[{section}] {key} = {value} (from {variable})" in error and expected in error
    assert f"unset {variable}" in result.output


def test_good_values_are_typed_and_choices_canonical(tmp_path: Path) -> None:
    env = {
        "PHOTOINDEX_SEARCH_LIMIT": "5",
        "PHOTOINDEX_DAEMON_LOG_LEVEL": "debug",
        "PHOTOINDEX_SCAN_EXCLUDE": "*.tmp, raw/*",
        "PHOTOINDEX_SCAN_INCLUDE_HIDDEN": "yes",
        "PHOTOINDEX_SEARCH_MIN_SCORE": "0.2",
    }
    cfg = load_config(environ=env, home=tmp_path)
    assert cfg.search.limit == 5 and cfg.search.min_score == 0.2
    assert cfg.daemon.log_level == "DEBUG"
    assert cfg.scan.exclude == ("*.tmp", "raw/*") and cfg.scan.include_hidden is True


def test_unknown_keys_are_still_reported(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[search]\nlimt = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"\[search\] limt .*line 2.* not a known key") as info:
        load_config(config_file=cfg, environ={}, home=tmp_path)
    assert "limit" in (info.value.hint or "")
    with pytest.raises(ConfigError, match="PHOTOINDEX_SEARCH_LIMT"):
        load_config(environ={"PHOTOINDEX_SEARCH_LIMT": "3"}, home=tmp_path)
    cfg.write_text("[serch]\nlimit = 3\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="unknown section"):
        load_config(config_file=cfg, environ={}, home=tmp_path)


def test_a_config_file_that_is_not_utf8_is_a_clear_error(home_env: dict[str, str], tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_bytes(b"[search]\n# caf\xe9\nlimit = 3\n")
    result = runner.invoke(app, ["--config", str(cfg), "status"])
    assert result.exit_code == 1
    assert f"error: {cfg}: line 2: not UTF-8 text (byte 0xe9)" in result.output
    assert "Traceback" not in result.output


def test_a_relative_home_is_made_absolute_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mybundle").mkdir()
    cfg = load_config(environ={"PHOTOINDEX_HOME": "demo", "PHOTOINDEX_MODEL_BUNDLE": "mybundle"})
    assert cfg.home == tmp_path / "demo" and cfg.home.is_absolute()
    assert cfg.model.bundle == str(tmp_path / "mybundle")
    # a shipped bundle name stays a name
    assert (
        load_config(environ={"PHOTOINDEX_MODEL_BUNDLE": "clip-vit-b32"}, home=tmp_path).model.bundle == "clip-vit-b32"
    )


def test_adding_a_setting_is_one_declaration() -> None:
    """A new field made with `setting(...)` is read, checked and documented with nothing else to change."""
    from photoindex import config as module

    @dataclasses.dataclass(frozen=True)
    class Extra:
        depth: int = module.setting(3, "How deep.", at_least=1, at_most=9)

    @dataclasses.dataclass(frozen=True)
    class Wider(Config):
        extra: Extra = module.section(Extra)

    saved = module.Config
    module.Config = Wider  # type: ignore[misc]
    try:
        assert "[extra]\n# How deep.\ndepth = 3\n" in module.example()
        built = module.load_config(environ={"PHOTOINDEX_EXTRA_DEPTH": "4"}, home=Path("/tmp/x"))
        assert built.extra.depth == 4  # type: ignore[attr-defined]
        with pytest.raises(ConfigError, match=r"\[extra\] depth = 10 \(from PHOTOINDEX_EXTRA_DEPTH\) is not a whole"):
            module.load_config(environ={"PHOTOINDEX_EXTRA_DEPTH": "10"}, home=Path("/tmp/x"))
    finally:
        module.Config = saved  # type: ignore[misc]
