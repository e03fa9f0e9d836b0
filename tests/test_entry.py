"""The program's entry: the installed script's target exists, and importing it runs nothing."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib import import_module
from pathlib import Path

from rawtui import __version__

ROOT = Path(__file__).resolve().parents[1]


def test_the_installed_scripts_target_is_a_function_and_importing_it_runs_nothing():
    target = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]["rawtui"]
    module, _, name = target.partition(":")
    entry = getattr(import_module(module), name)  # a module that ran the CLI on import would exit here
    assert callable(entry)


def test_the_entry_runs_the_command_line_with_the_gc_off_during_its_imports():
    code = ("import gc, sys; sys.argv = ['rawtui', '--version']\n"
            "import rawtui.cli\n"
            "seen = []; real = rawtui.cli.main\n"
            "rawtui.cli.main = lambda: seen.append(gc.isenabled()) or real()\n"
            "from rawtui.__main__ import run\n"
            "try:\n    run()\nexcept SystemExit as e:\n    print('exit', e.code, 'gc during imports', seen)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert r.stdout.split("\n")[0] == f"rawtui {__version__}", r.stderr
    assert "exit 0 gc during imports [False]" in r.stdout, r.stdout + r.stderr
    as_module = subprocess.run([sys.executable, "-m", "rawtui", "--version"], capture_output=True, text=True,
                               timeout=60, check=False, cwd=ROOT)
    assert (as_module.returncode, as_module.stdout.strip()) == (0, f"rawtui {__version__}"), as_module.stderr


def test_the_end_runs_the_atexit_handlers_flushes_and_exits_with_the_code():
    code = ("import atexit\n"
            "atexit.register(lambda: print(' atexit ran'))\n"
            "print('buffered', end='')\n"
            "from rawtui.__main__ import leave\n"
            "leave(3)\n"
            "print('not reached')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert (r.returncode, r.stdout, r.stderr) == (3, "buffered atexit ran\n", "")


def test_the_end_leaves_it_to_the_interpreter_while_a_non_daemon_thread_runs():
    code = ("import threading\n"
            "go = threading.Event()\n"
            "t = threading.Thread(target=lambda: go.wait(30) and print('thread done'))\n"
            "t.start()\n"
            "from rawtui.__main__ import leave\n"
            "leave(3)\n"
            "print('returned')\n"
            "go.set()\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False)
    assert (r.returncode, r.stdout) == (0, "returned\nthread done\n"), r.stderr
