"""The command line: a thin Typer adapter over the library (`app`), and how results are shown (`render`).

`main` is the console script. A search the running daemon can answer is served before the Typer
app is built (`served`); everything else goes to the app.
"""

from __future__ import annotations

from photoindex.lazy import public_names

TYPE_CHECKING = False  # typing is not imported: a served search starts here (cli/served.py)
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

        # Outside the Typer app, so its endings are handled here the way the app (and Click) handle them.
        try:
            code = search(sys.argv[2:])
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise SystemExit(130) from None
        except BrokenPipeError:  # `photoindex search ... | head -1`: quiet, as Click is
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not fail again
            raise SystemExit(1) from None
        if code is not None:
            raise SystemExit(code)
    from photoindex.cli.app import app

    app()
