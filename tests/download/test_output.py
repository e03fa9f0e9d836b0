"""rawtui.download.output: the body written by a thread, gathered or handed over whole, renamed only when complete."""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rawtui.download.output import HANDOFF, OutputFile
from rawtui.errors import OutputError

SIZES = st.sampled_from([1, 1448, 20_000, HANDOFF // 4, HANDOFF + 3, 3 * HANDOFF])


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(SIZES, st.integers(0, 255)), max_size=60))
def test_any_mix_of_small_and_big_writes_lands_in_order_with_its_sha256(tmp_path_factory, writes) -> None:
    path = tmp_path_factory.mktemp("out") / "body.bin"
    out = OutputFile(str(path), max_pending=2 * HANDOFF)  # small: the writer's backpressure is exercised too
    out.open()
    want = hashlib.sha256()
    chunks = [bytes([v]) * n for n, v in writes]
    for c in chunks:
        out.write(c)
        want.update(c)
    assert not path.exists()  # nothing under the final name before commit
    assert out.commit() == str(path)
    assert path.read_bytes() == b"".join(chunks)
    assert out.size == sum(map(len, chunks)) and out.sha256.hexdigest() == want.hexdigest()
    assert [p for p in os.listdir(path.parent) if p != "body.bin"] == []  # no temporary file left


def test_a_full_disk_is_reported_and_nothing_stays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Full:
        """The temporary file on a disk with no space left."""

        def __init__(self, fd: int, *args: object, **kwargs: object) -> None:
            self.fd = fd

        def write(self, data: object) -> int:
            raise OSError(errno.ENOSPC, "No space left on device")

        def close(self) -> None:
            os.close(self.fd)

    monkeypatch.setattr("rawtui.download.output.os.fdopen", Full)
    path = tmp_path / "body.bin"
    out = OutputFile(str(path))
    out.open()
    out.write(b"x" * 1448)
    out.write(b"y" * (HANDOFF + 1))
    with pytest.raises(OutputError, match="the disk is full"):
        out.commit()
    assert os.listdir(tmp_path) == []


def test_an_empty_part_file_is_not_truncated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Truncating an empty file is not free on ext4: its close then starts writing back everything written
    since (auto_da_alloc), 70-100 ms for a 200 MiB download. A part file with old bytes is still emptied."""
    calls: list[int] = []
    real = os.ftruncate
    monkeypatch.setattr("rawtui.download.output.os.ftruncate", lambda fd, n: (calls.append(n), real(fd, n))[1])
    fresh = tmp_path / "fresh.bin"
    out = OutputFile(str(fresh))
    out.open()
    out.write(b"new" * 1000)
    out.commit()
    assert calls == [] and fresh.read_bytes() == b"new" * 1000
    stale = tmp_path / "stale.bin"
    (tmp_path / "stale.bin.part").write_bytes(b"old bytes of another version" * 100)
    out = OutputFile(str(stale))
    out.open()
    out.write(b"new" * 10)
    out.commit()
    assert calls == [0] and stale.read_bytes() == b"new" * 10
