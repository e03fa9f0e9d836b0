"""Dataclass methods compiled once, not at every start-up: a bytecode cache for what ``dataclasses`` generates.

CPython 3.11's :mod:`dataclasses` writes each class's ``__init__``, ``__repr__`` and ``__eq__`` (and, for a
frozen class, ``__setattr__``, ``__delattr__`` and ``__hash__``) as Python source and compiles it with
``exec`` when the class is defined: ~0.1 ms a method, ~400 methods for the ~95 dataclasses a download
imports — a third of rawtui's start-up (measured with ``cProfile`` and ``-X importtime``; the README's
"Performance" section has the before/after). The compiled code is a pure function of that source text, so
it can be kept by the text, exactly as Python keeps a module's bytecode in ``__pycache__``:

* :func:`install` (called by ``rawtui/__init__.py``, so before any rawtui dataclass exists) loads
  ``rawtui/__pycache__/dataclasses.<cache tag>.marshal`` and makes the ``dataclasses`` module's ``exec``
  look a source text up there before compiling it. Only ``dataclasses``'s own name ``exec`` is replaced
  (a module global shadowing the builtin there): every dataclass defined afterwards (rawtui's, h11's,
  Textual's) is built as before, from code compiled from the same text; nothing else changes.
  ``RAWTUI_DATACLASS_CACHE=FILE`` uses another file, ``=off`` none.
* :func:`save` writes the file (atomically, by rename) when this process compiled something the file did not
  have: at exit, and before a download drops root (afterwards the package's directory may not be
  writable). Nothing happens when the directory is not writable — as with ``.pyc`` files.
* The file starts with the interpreter's bytecode magic number and a format tag; a file from another
  Python, a truncated or foreign file is ignored (and replaced at the next save). It is trusted as
  ``__pycache__``'s ``.pyc`` files are: written by whoever may write the package.

``python -m rawtui.tools.warm`` imports every module of rawtui and saves (``scripts/install.sh`` runs it).
"""

from __future__ import annotations

import _frozen_importlib_external  # always loaded: the import system itself
import atexit
import builtins
import dataclasses
import marshal
import os
import sys
from types import CodeType
from typing import Any

MAGIC = _frozen_importlib_external.MAGIC_NUMBER + b"rawtui-dataclass-cache-1\n"
PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__",
                    f"dataclasses.{sys.implementation.cache_tag}.marshal")
KEEP_AT_MOST = 1500  # entries (rawtui and its libraries define ~550): past that, keep only this process's


class Cache:
    """The file at ``path``: what it had, and the source texts this process's dataclasses compiled."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.stored: dict[str, CodeType] = {}
        self.used: dict[str, CodeType] = {}
        self.new = 0  # compiled here, not in the file
        self.hits = 0

    def load(self) -> None:
        try:
            with open(self.path, "rb") as f:
                data = f.read()
            if data.startswith(MAGIC):
                table = marshal.loads(data[len(MAGIC):])
                if isinstance(table, dict):
                    self.stored = table
        except (OSError, EOFError, ValueError, TypeError):
            self.stored = {}

    def exec(self, source: Any, globals: Any = None, locals: Any = None, /) -> None:
        if type(source) is str:
            code = self.stored.get(source)
            if type(code) is CodeType:
                self.hits += 1
            else:  # what exec(source) compiles: file "<string>", no inherited __future__ flags
                code = compile(source, "<string>", "exec", dont_inherit=True)
                self.new += 1
            self.used[source] = code
            source = code
        builtins.exec(source, globals, locals)  # noqa: S102 - dataclasses' own exec, its own source

    def save(self) -> bool:
        if not self.new:
            return False
        table = {**self.stored, **self.used}
        if len(table) > KEEP_AT_MOST:
            table = dict(self.used)
        tmp = f"{self.path}.{os.getpid()}.tmp"
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            with open(tmp, "wb") as f:
                f.write(MAGIC + marshal.dumps(table))
            os.replace(tmp, self.path)
        except (OSError, ValueError):
            try:
                os.unlink(tmp)
            except OSError:
                pass
            return False
        self.stored, self.new = table, 0
        return True


_cache: Cache | None = None


def install(path: str | None = None) -> None:
    """Load the file and route ``dataclasses``'s ``exec`` through it (once per process). The file is
    ``path``, else ``$RAWTUI_DATACLASS_CACHE``, else :data:`PATH`; ``RAWTUI_DATACLASS_CACHE=off``: no cache."""
    global _cache
    if path is None:
        path = os.environ.get("RAWTUI_DATACLASS_CACHE") or PATH
    if _cache is not None or path == "off":
        return
    _cache = Cache(path)
    _cache.load()
    dataclasses.exec = _cache.exec  # type: ignore[attr-defined]  # shadows the builtin in that module only
    atexit.register(save)


def save() -> bool:
    """Write the file if this process compiled something it lacked; False when nothing was written."""
    return _cache.save() if _cache is not None else False


def path() -> str | None:
    """The file in use (None: no cache in this process)."""
    return _cache.path if _cache is not None else None


def stats() -> tuple[int, int]:
    """(methods found in the file, methods compiled) so far in this process."""
    return (_cache.hits, _cache.new) if _cache is not None else (0, 0)
