"""The command line: a thin Typer adapter over the library (`app`), and how results are shown (`render`).

`main` is the console script. A search the running daemon can answer is served before the Typer
app is built (`served`); everything else goes to the app.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from photoindex.lazy import public_names

if TYPE_CHECKING:
    from photoindex.cli.app import app

__getattr__, _lazy = public_names(__name__, {"app": "app"})
__all__ = [*_lazy, "main"]


def main() -> None:
    """Console-script entry point: `photoindex ...`."""
    import os
    import sys

    from photoindex.home import UMASK

    os.umask(UMASK)  # what photoindex creates (catalog, index, locks, status) is its owner's alone
    if sys.argv[1:2] == ["search"]:
        from photoindex.cli.served import search

        code = search(sys.argv[2:])
        if code is not None:
            raise SystemExit(code)
    from photoindex.cli.app import app

    app()
