"""Lazy public names for the packages whose modules are costly to import (Textual, the lab, a download).

``__getattr__ = lazy(__name__, {"Name": "module", ...})`` in a package's ``__init__`` makes
``package.Name`` import ``package.module`` on first use (PEP 562), so naming a package's public API
costs nothing at start-up and creates no import cycle.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy(package: str, names: dict[str, str]) -> Callable[[str], Any]:
    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{module}"), name)

    return __getattr__
