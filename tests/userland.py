"""A rawtui that another user can run, wherever this checkout, its venv and the interpreter live.

Tests that run rawtui as another user (a sudo run dropping to SUDO_UID, ``setpriv --reuid``) need that
user to read the interpreter, the standard library, rawtui and every package rawtui imports. A clone
under a 0700 directory (``/root/x``), its venv there, or pyenv in root's home each break that. So once
per session this builds, in a temporary directory everyone may enter, a tree of directories 0755 and
files 0644 (0755 when executable):

    <root>/site/     rawtui (this checkout's package) and every distribution it requires, with the files
                     that distribution installed (nothing is downloaded)
    <root>/python/   the interpreter: executable, shared library, standard library (without its tests) —
                     only when the interpreter in use is not readable by others; else that one is used

Bytecode comes along (it checks its source's mtime, which a copy keeps). Files already readable by
everyone are hard-linked (instant on one file system); the rest are copied.
Before use, the tree is proven by importing what rawtui imports, as uid 65534.

Used as a plugin (``pytest_plugins = ("userland",)`` in a test module): fixtures ``userland`` (session)
and ``user_dir`` (a directory owned by uid 65534).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from rawtui.download.privilege import readable

NOBODY = 65534
REPO = Path(__file__).resolve().parents[1]
PROJECT = "rawtui"
# what a run imports, eagerly or after the drop (rawtui.download.privilege._MODULES_AFTER_DROP and the views)
PROOF_IMPORTS = ("json", "rawtui.cli", "rawtui.download.session", "rawtui.views.headless", "rawtui.link.route",
                 "rawtui.views.tui.app", "h11", "rich.console", "textual.app", "pyroute2")
# parts of the standard library nothing here imports: test suites, GUI, build files
_STDLIB_SKIP = re.compile(r"^(site-packages|dist-packages|test|tests|idle_test|idlelib|tkinter|turtledemo|"
                          r"ensurepip|lib2to3|config-.*)$")


@dataclass(frozen=True, slots=True)
class Userland:
    """Where the readable copy is and how to run it."""

    root: Path
    python: str
    site: Path
    lib: Path | None  # the copied interpreter's shared library directory, if any

    def env(self, base: Mapping[str, str] | None = None, **extra: str) -> dict[str, str]:
        """``base`` (default os.environ) with SUDO_* removed, pointing Python at the copy."""
        e = {k: v for k, v in (os.environ if base is None else base).items()
             if not k.startswith(("SUDO_", "PYTHONHOME", "VIRTUAL_ENV"))}
        e.update(PYTHONPATH=str(self.site), PYTHONDONTWRITEBYTECODE="1", PYTHONNOUSERSITE="1")
        if self.lib is not None:
            e["LD_LIBRARY_PATH"] = os.pathsep.join(p for p in (str(self.lib), e.get("LD_LIBRARY_PATH")) if p)
        e.update(extra)
        return e

    def rawtui(self, *args: str) -> list[str]:
        """argv running ``rawtui *args`` from the copy."""
        return [self.python, "-m", "rawtui", *args]


def readable_by_all(path: str | Path) -> bool:
    return readable(str(path), NOBODY, [NOBODY])


def readable_tempdir() -> str:
    """A temporary directory others may traverse (TMPDIR may point into a private one)."""
    for d in (tempfile.gettempdir(), "/tmp", "/var/tmp", "/dev/shm"):
        if os.path.isdir(d) and os.access(d, os.W_OK) and readable_by_all(d):
            return d
    raise RuntimeError("no temporary directory that other users can enter")


# -- building -----------------------------------------------------------------------------------------


def _place(src: Path, dst: Path) -> None:
    """Hard-link ``src`` at ``dst`` if everyone may already read it, else copy it; modes 0644/0755."""
    st = src.stat()
    dst.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    if st.st_mode & 0o444 == 0o444:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass
    shutil.copy2(src, dst)
    os.chmod(dst, 0o755 if st.st_mode & 0o111 else 0o644)


def _copy_tree(src: Path, dst: Path, skip_dir: re.Pattern[str] | None = None) -> None:
    for here, dirs, files in os.walk(src):
        dirs[:] = [d for d in dirs if not (skip_dir and skip_dir.match(d))]
        rel = Path(here).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True, mode=0o755)
        for name in files:
            if not name.endswith((".opt-1.pyc", ".opt-2.pyc")):  # bytecode checks its source's mtime
                _place(Path(here) / name, dst / rel / name)


def required_distributions(project: str = PROJECT) -> list[metadata.Distribution]:
    """Every installed distribution ``project`` needs at run time (no extras of its own), transitively."""
    seen: dict[str, metadata.Distribution] = {}
    done: set[tuple[str, frozenset[str]]] = set()
    todo: list[tuple[str, frozenset[str]]] = [(project, frozenset())]
    while todo:
        name, extras = todo.pop()
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue  # an optional dependency not installed here: rawtui works without it
        key = re.sub(r"[-_.]+", "-", dist.metadata["Name"]).lower()
        if (key, extras) in done:
            continue
        done.add((key, extras))
        seen[key] = dist
        for line in dist.requires or ():
            req = Requirement(line)
            envs = [{"extra": e} for e in extras] or [{"extra": ""}]
            if req.marker is None or any(req.marker.evaluate(env) for env in envs):
                todo.append((req.name, frozenset(req.extras)))
    return [d for k, d in seen.items() if k != PROJECT]


def _copy_distribution(dist: metadata.Distribution, site: Path) -> None:
    base = Path(str(dist.locate_file(""))).resolve()
    for f in dist.files or ():
        src = Path(str(dist.locate_file(f))).resolve()
        try:
            rel = src.relative_to(base)  # skips ../../bin scripts
        except ValueError:
            continue
        if src.is_file() and not rel.name.endswith(".pth"):
            dst = site / rel
            if not dst.exists():
                _place(src, dst)


def _interpreter(root: Path) -> tuple[str, Path | None]:
    """(executable, shared-library dir or None): the real interpreter if others can read it, else a copy."""
    exe = Path(os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable))
    stdlib = Path(os.__file__).resolve().parent
    shared = sysconfig.get_config_var("Py_ENABLE_SHARED")
    libdir, soname = sysconfig.get_config_var("LIBDIR"), sysconfig.get_config_var("INSTSONAME")
    libpython = Path(libdir, soname) if shared and libdir and soname else None
    needed = [exe, stdlib / "os.py", *([libpython] if libpython and libpython.exists() else [])]
    if all(readable_by_all(p) for p in needed):
        return str(exe), None
    home = root / "python"
    _place(exe, home / "bin" / exe.name)
    lib = None
    if libpython is not None and libpython.exists():
        lib = home / "lib"
        _place(libpython, lib / soname)
    # getpath finds the prefix from the executable: <home>/bin/.. holding <platlibdir>/python3.X/os.py
    _copy_tree(stdlib, home / sys.platlibdir / stdlib.name, _STDLIB_SKIP)
    return str(home / "bin" / exe.name), lib


def build(root: Path, repo: Path = REPO) -> Userland:
    """Fill ``root`` (an empty directory) with the readable copy; see the module docstring."""
    os.chmod(root, 0o755)
    site = root / "site"
    _copy_tree(repo / PROJECT, site / PROJECT)
    for dist in required_distributions():
        _copy_distribution(dist, site)
    python, lib = _interpreter(root)
    return Userland(root=root, python=python, site=site, lib=lib)


def prove(land: Userland) -> None:
    """Import what rawtui imports as uid 65534; fail the test with the reason when that does not work."""
    code = f"import {', '.join(PROOF_IMPORTS)}, sys; print(sys.prefix)"
    r = subprocess.run([land.python, "-c", code], capture_output=True, text=True, timeout=60, env=land.env(),
                       cwd="/", user=NOBODY, group=NOBODY, extra_groups=[], check=False)
    if r.returncode != 0:
        pytest.fail(f"the readable copy of rawtui in {land.root} does not work for uid {NOBODY}:\n{r.stderr}")


# -- fixtures -----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def userland() -> Iterator[Userland]:
    """rawtui, its packages and (if needed) the interpreter, readable by every user; removed at the end."""
    if os.geteuid() != 0:
        pytest.skip("running rawtui as another user needs root")
    root = Path(tempfile.mkdtemp(prefix="rawtui-userland-", dir=readable_tempdir()))
    try:
        land = build(root)
        prove(land)
        yield land
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def user_dir() -> Iterator[Path]:
    """A directory uid 65534 owns and can reach (pytest's tmp_path is root's and 0700)."""
    d = Path(tempfile.mkdtemp(prefix="rawtui-user-", dir=readable_tempdir()))
    os.chmod(d, 0o755)
    os.chown(d, NOBODY, NOBODY)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)

