"""Where the files that ship with photoindex live, in a wheel and in a source checkout alike."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _shipped(wheel_name: str, source_name: str) -> Path:
    # A wheel carries the folder inside the package (see pyproject's force-include);
    # a source checkout or an editable install has it at the repository's top level.
    inside = _PACKAGE / wheel_name
    if inside.is_dir():
        return inside
    return _PACKAGE.parent / source_name


def models_dir() -> Path:
    """The folder of the shipped model manifests (`models/*.toml`)."""
    return _shipped("_models", "models")


def migrations_dir() -> Path:
    """The Alembic script folder (`migrations/`)."""
    return _shipped("_migrations", "migrations")


def data_file(name: str) -> Path:
    """A data file shipped as package data (tokenizer vocabularies)."""
    return _PACKAGE / "data" / name


def config_example() -> Path:
    """The documented example configuration (`config.example.toml`)."""
    inside = _PACKAGE / "_config.example.toml"
    return inside if inside.is_file() else _PACKAGE.parent / "config.example.toml"
