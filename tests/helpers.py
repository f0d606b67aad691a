"""Helpers shared by test modules (imported as `helpers`: pytest puts this folder on sys.path)."""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from typer.testing import CliRunner

from photoindex.cli.app import app
from photoindex.config import Config

runner = CliRunner()


def cli(*args: str) -> Any:
    """Run the CLI in-process with --json and return the parsed output (asserting exit 0)."""
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def sql(config: Config, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run one statement on the catalog file with plain sqlite3 (committed); paths read as photoindex reads them."""
    con = sqlite3.connect(config.db_path)
    con.text_factory = lambda b: b.decode("utf-8", "surrogateescape")
    try:
        with con:
            return con.execute(statement, params).fetchall()
    finally:
        con.close()


def backdate_missing(config: Config, days: float) -> None:
    """Pretend the missing photos went missing `days` earlier (timestamps are stored as naive UTC text)."""
    sql(config, "UPDATE photos SET updated_at = datetime(updated_at, ?) WHERE status = 'missing'", f"-{days} days")
