"""``python -m rawtui.tools.warm``: import every module of rawtui once, so that the dataclass cache
(:mod:`rawtui.dataclass_cache`) holds every class's methods before the first download (``scripts/install.sh``
runs it as the installing user, who may write the package's ``__pycache__``; a download run through sudo
drops to the invoking user before it imports most of its modules)."""

from __future__ import annotations

import importlib
import pkgutil
import sys

import rawtui
from rawtui import dataclass_cache


def main() -> int:
    for mod in pkgutil.walk_packages(rawtui.__path__, "rawtui."):
        if mod.name.endswith("__main__") or mod.name == __name__:
            continue
        try:
            importlib.import_module(mod.name)
        except ImportError:  # an optional dependency that is not installed
            pass
    hits, new = dataclass_cache.stats()  # (before save(), which starts counting anew)
    saved = dataclass_cache.save()
    print(f"rawtui: dataclass cache {dataclass_cache.path()}: {hits + new} methods, {new} compiled now"
          f" ({'written' if saved else 'unchanged'})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
