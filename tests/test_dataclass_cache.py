"""The dataclass methods' bytecode cache (rawtui/dataclass_cache.py): same classes, no compiling the
second time, and any bad file ignored."""

from __future__ import annotations

import dataclasses
import json
import marshal
import os
import subprocess
import sys
from pathlib import Path
from types import CodeType

import pytest

from rawtui import dataclass_cache
from rawtui.dataclass_cache import MAGIC, Cache

ROOT = Path(__file__).resolve().parent.parent


def _shape(code: CodeType) -> tuple[object, ...]:
    """A code object's content, nested code included (marshal's bytes are not canonical: its sharing
    flags follow reference counts)."""
    return (code.co_code, code.co_names, code.co_varnames, code.co_freevars, code.co_cellvars, code.co_name,
            code.co_qualname, code.co_firstlineno, code.co_linetable, code.co_flags, code.co_argcount,
            tuple(_shape(c) if isinstance(c, CodeType) else c for c in code.co_consts))


def _define(cache: Cache, monkeypatch: pytest.MonkeyPatch) -> tuple[type, type]:
    """Two classes, one frozen, made with ``cache`` as dataclasses' exec."""
    monkeypatch.setattr(dataclasses, "exec", cache.exec, raising=False)

    @dataclasses.dataclass(frozen=True, slots=True)
    class Point:
        x: int
        y: int = 2

    @dataclasses.dataclass
    class Box:
        items: list[int] = dataclasses.field(default_factory=list)
        label: str = "box"

    monkeypatch.undo()
    return Point, Box


def test_a_second_process_finds_every_method_and_the_classes_behave_the_same(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "cache.marshal")
    first = Cache(path)
    first.load()  # no file yet
    p1, b1 = _define(first, monkeypatch)
    compiled = first.new
    assert first.hits == 0 and compiled >= 8  # Point: init, repr, eq, setattr, delattr, hash; Box: 3
    assert first.save()
    assert not first.save()  # nothing new since: not written again

    second = Cache(path)
    second.load()
    p2, b2 = _define(second, monkeypatch)
    assert (second.hits, second.new) == (compiled, 0)
    # what the file gave is what compiling gives
    for source, code in second.used.items():
        assert _shape(code) == _shape(compile(source, "<string>", "exec", dont_inherit=True))
    for point, box in ((p1, b1), (p2, b2)):
        a = point(1)
        assert repr(a).endswith("Point(x=1, y=2)")
        assert a == point(1, 2) and a != point(1, 3) and hash(a) == hash(point(1, 2))
        with pytest.raises(dataclasses.FrozenInstanceError):
            a.x = 5  # type: ignore[misc]
        b = box()
        b.items.append(1)
        assert box().items == [] and b == box([1]) and b.label == "box"


@pytest.mark.parametrize("content", [
    b"",
    b"not a cache at all",
    MAGIC[:-3],
    MAGIC + b"\x00garbage",
    MAGIC + marshal.dumps(["a list, not a dict"]),
    b"\x00\x00\x0d\x0a" + MAGIC[4:] + marshal.dumps({}),  # another Python's magic number
])
def test_a_bad_file_is_ignored_and_replaced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes) -> None:
    path = tmp_path / "cache.marshal"
    path.write_bytes(content)
    cache = Cache(str(path))
    cache.load()
    assert cache.stored == {}
    _define(cache, monkeypatch)
    assert cache.hits == 0 and cache.new > 0
    assert cache.save()
    assert path.read_bytes().startswith(MAGIC)


def test_a_foreign_entry_is_compiled_not_executed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A value that is not a code object (a damaged or hand-made file) is not trusted as one."""
    path = tmp_path / "cache.marshal"
    first = Cache(str(path))
    _define(first, monkeypatch)
    path.write_bytes(MAGIC + marshal.dumps({src: "not code" for src in first.used}))
    second = Cache(str(path))
    second.load()
    p, _ = _define(second, monkeypatch)
    assert second.hits == 0 and second.new == first.new
    assert p(1) == p(1, 2)


def test_an_unwritable_place_is_no_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the directory would be")
    cache = Cache(str(blocker / "sub" / "cache.marshal"))
    _define(cache, monkeypatch)
    assert not cache.save()
    assert list(tmp_path.iterdir()) == [blocker]  # no temporary file left


def test_old_entries_are_dropped_past_the_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "cache.marshal")
    old = Cache(path)
    old.stored = {f"# an old class {i}\n": compile("pass", "<string>", "exec") for i in range(10)}
    _define(old, monkeypatch)
    monkeypatch.setattr(dataclass_cache, "KEEP_AT_MOST", 5)
    assert old.save()
    again = Cache(path)
    again.load()
    assert set(again.stored) == set(old.used)  # only what this process used


_PROBE = """
import json, sys
import rawtui.cli, rawtui.download.session
from rawtui import dataclass_cache
print(json.dumps([dataclass_cache.path(), *dataclass_cache.stats()]))
"""


def _probe(env_value: str) -> list[object]:
    env = {**os.environ, "RAWTUI_DATACLASS_CACHE": env_value}
    res = subprocess.run([sys.executable, "-c", _PROBE], cwd=ROOT, env=env, capture_output=True, text=True,
                         timeout=60, check=True)
    return json.loads(res.stdout)


def test_rawtui_itself_compiles_nothing_the_second_time(tmp_path: Path) -> None:
    """The program's own imports: the first process compiles (and saves at exit), the next finds all."""
    path = str(tmp_path / "cache.marshal")
    where, hits, new = _probe(path)
    assert where == path and hits == 0 and isinstance(new, int) and new > 100
    assert Path(path).exists()
    assert _probe(path) == [path, new, 0]
    assert _probe("off") == [None, 0, 0]


def test_the_warm_up_fills_the_cache_with_every_module(tmp_path: Path) -> None:
    """``python -m rawtui.tools.warm`` (scripts/install.sh): every module imported, their methods saved;
    run again, nothing left to compile."""
    path = tmp_path / "cache.marshal"
    env = {**os.environ, "RAWTUI_DATACLASS_CACHE": str(path)}

    def warm() -> str:
        return subprocess.run([sys.executable, "-m", "rawtui.tools.warm"], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=120, check=True).stdout

    first = warm()
    assert path.exists() and f"dataclass cache {path}: " in first and "(written)" in first
    total = int(first.split(f"{path}: ")[1].split()[0])
    assert total > 400 and f"{total} methods, {total} compiled now" in first
    assert f"{total} methods, 0 compiled now (unchanged)" in warm()
