"""The architecture, checked: which package may import which (README, "How it is built").

A package may import only from the layers below it. Event modules (``*/events.py``) are leaves that
import only the stack's event base, and ``rawtui/events.py`` gathers them. Nothing imports a
leading-underscore name of another package, tests included.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "rawtui"

# bottom first; a module may import from its own layer's package and any layer before it
LAYERS: list[set[str]] = [
    {"rawtui", "errors", "api", "endings", "aside", "dataclass_cache"},
    {"wire"},
    {"stack"},
    {"link"},
    {"http"},
    {"lab"},
    {"analysis"},
    {"download", "recording", "watch"},
    {"views"},
    {"tools"},
    {"cli", "__main__"},
]
RANK = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def owner(module: str) -> str:
    """The top-level part of rawtui a module belongs to: a package or a root module ("cli")."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] != "__init__" else "rawtui"


def imports(path: Path) -> list[tuple[str, list[str]]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.ImportFrom) and node.level:
            raise AssertionError(f"{path}: relative import (use rawtui.… so a move shows in every importer)")
        elif isinstance(node, ast.Import):
            found.extend((a.name, []) for a in node.names)
    return [(m, names) for m, names in found if m == "rawtui" or m.startswith("rawtui.")]


def modules() -> list[tuple[str, Path]]:
    return [(".".join(p.relative_to(ROOT).with_suffix("").parts), p) for p in sorted(PACKAGE.rglob("*.py"))]


def test_every_package_has_a_layer() -> None:
    tops = {owner(name) for name, _ in modules()}
    assert tops <= set(RANK) | {"events"}, tops - set(RANK)


def test_imports_go_down_the_layers() -> None:
    wrong = []
    for name, path in modules():
        me = owner(name)
        for target, _ in imports(path):
            other = owner(target)
            if name.endswith(".events") and name != "rawtui.events":
                ok = target in ("rawtui.stack.events", "rawtui.stack.tcp_states") or (
                    name == "rawtui.stack.events" and target.startswith("rawtui.stack."))
            elif name == "rawtui.events":
                ok = target.endswith(".events")
            elif other == "events":
                ok = RANK[me] >= RANK["stack"] and me != "stack"  # the stream is for what is above the stack
            else:
                ok = other == me or RANK[other] <= RANK[me]
            if not ok:
                wrong.append(f"{name} imports {target}")
    assert wrong == []


def test_no_private_name_crosses_a_package() -> None:
    wrong = []
    files = [(n, p) for n, p in modules()] + [
        ("tests." + p.stem, p) for p in sorted((ROOT / "tests").rglob("*.py"))]
    for name, path in files:
        for target, names in imports(path):
            if owner(target) == owner(name) and not name.startswith("tests."):
                continue
            wrong += [f"{name} imports {target}.{n}" for n in names if n.startswith("_") and not n.endswith("__")]
            if any(part.startswith("_") and not part.endswith("__") for part in target.split(".")):
                wrong.append(f"{name} imports {target}")
    assert wrong == []


def test_packages_name_their_public_api() -> None:
    import importlib

    for init in sorted(PACKAGE.glob("*/__init__.py")):
        package = importlib.import_module(f"rawtui.{init.parent.name}")
        names = getattr(package, "__all__", None)
        if init.parent.name in ("tools",):  # commands, run as `rawtui interfaces` / `python -m`
            continue
        assert names, f"rawtui.{init.parent.name} has no __all__"
        for n in names:
            assert getattr(package, n) is not None, f"rawtui.{init.parent.name}.{n}"
