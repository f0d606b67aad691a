"""A package's public names, imported from their modules on first use (PEP 562).

Each package's `__init__.py` maps its public names to the modules that define them, so that
importing the package costs nothing until a name is used (docs/architecture.md, "Start-up").
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing itself is not imported: `photoindex search` starts here (cli/served.py)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def public_names(package: str, names: dict[str, str]) -> tuple[Callable[[str], Any], list[str]]:
    """The module-level `__getattr__` and `__all__` of `package`, whose names live in `names[name]` modules."""

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return __getattr__, sorted(names)
