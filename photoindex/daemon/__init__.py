"""`photoindex daemon`: the loop, the watchers (a hint, the scan is the truth) and settling of changes."""

from __future__ import annotations

from typing import TYPE_CHECKING

from photoindex.lazy import public_names

# Public names, loaded on first use so that importing this package stays cheap
# (see docs/architecture.md, "Start-up").
_PUBLIC = {
    "Daemon": "loop",
    "run_daemon": "loop",
}

if TYPE_CHECKING:
    from photoindex.daemon.loop import Daemon, run_daemon

__getattr__, __all__ = public_names(__name__, _PUBLIC)
