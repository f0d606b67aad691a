"""`photoindex daemon`: the loop, the watchers (a hint, the scan is the truth) and settling of changes."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# Public names, loaded on first use so that importing this package stays cheap
# (see docs/architecture.md, "Start-up").
_PUBLIC = {
    "Daemon": "loop",
    "run_daemon": "loop",
}

if TYPE_CHECKING:
    from photoindex.daemon.loop import Daemon, run_daemon

__all__ = sorted(_PUBLIC)


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
