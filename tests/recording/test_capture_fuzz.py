"""Broken and hostile captures: random bit flips, truncations and length fields changed in every kind of
capture file never raise anything but the documented one-line error (UsageError, exit 2) and the work
stays linear in the file's size: the reader visits at most the file's bytes, yields at most one frame
per 16 bytes, and the analysis makes a bounded number of events per frame (counted, not timed)."""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path

import pytest
from capture_files import Rec, gzipped, pcap_bytes, pcapng_bytes, read_classic, relink
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_tui_pcap_replay import write_download

from rawtui.errors import EXIT_USAGE, UsageError
from rawtui.recording import load_events, open_capture

SCALE = max(1, int(os.environ.get("WIRE_HYPOTHESIS_SCALE", "1")))


def _variants(tmp: Path) -> dict[str, bytes]:
    path = tmp / "download.pcap"
    write_download(path)
    recs = read_classic(path)
    sll2 = [Rec(r.sec, r.nsec, d, 1) for r in recs if (d := relink(r.data, 276)) is not None]
    merged = [Rec(r.sec, r.nsec, r.data, 0) for r in recs[::2]] + sll2[1::2]
    merged.sort(key=lambda r: r.ts)
    return {
        "pcap": pcap_bytes(recs, 1),
        "pcap-be-nsec-fcs": pcap_bytes(recs, 1, order=">", nano=True, fcs=4),
        "pcapng": pcapng_bytes(recs, [(1, 9)]),
        "pcapng-be-two-interfaces": pcapng_bytes(merged, [(1, None), (276, 9)], order=">"),
        "pcap.gz": gzipped(pcapng_bytes(recs, [(1, 6)])),
    }


_CACHE: dict[str, bytes] = {}


@pytest.fixture(scope="module")
def variants(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    if not _CACHE:
        _CACHE.update(_variants(tmp_path_factory.mktemp("fuzz")))
    return _CACHE


HOSTILE = st.sampled_from([0, 1, 12, 0x7FFFFFFF, 0xFFFFFFFC, 0xFFFFFFFF, 0x00010000])

mutation = st.one_of(
    st.tuples(st.just("flip"), st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 7)), min_size=1,
                                        max_size=8)),
    st.tuples(st.just("cut"), st.integers(0, 1 << 20)),
    st.tuples(st.just("field"), st.integers(0, 1 << 18), st.one_of(HOSTILE, st.integers(0, 2**32 - 1))),
)


def mutate(data: bytes, m: tuple) -> bytes:  # type: ignore[type-arg]
    buf = bytearray(data)
    if m[0] == "flip":
        for pos, bit in m[1]:
            buf[pos % len(buf)] ^= 1 << bit
    elif m[0] == "cut":
        del buf[m[1] % (len(buf) + 1):]
    else:
        pos = (m[1] * 4) % max(4, len(buf) - 4)
        buf[pos:pos + 4] = m[2].to_bytes(4, "little" if m[1] % 2 else "big")
    return bytes(buf)


@settings(max_examples=150 * SCALE, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(["pcap", "pcap-be-nsec-fcs", "pcapng", "pcapng-be-two-interfaces", "pcap.gz"]), mutation,
       st.booleans())
def test_mutated_captures(variants: dict[str, bytes], tmp_path: Path, name: str, m: tuple,  # type: ignore[type-arg]
                          inside_gzip: bool) -> None:
    data = _CACHE[name]  # not the fixture's dict: hypothesis would print all of it with a failure
    if name.endswith(".gz") and inside_gzip:  # damage the capture, then compress it (the gzip stream is sound)
        data = gzipped(mutate(gzip.decompress(data), m))
    else:
        data = mutate(data, m)
    path = tmp_path / "mutated"
    path.write_bytes(data)
    size = len(gzip.decompress(data)) if data[:2] == b"\x1f\x8b" and _sound_gzip(data) else len(data) * 1032
    try:
        cap = open_capture(path)
    except UsageError as exc:
        assert exc.exit_code == EXIT_USAGE and "\n" not in exc.message
    else:
        frames = list(cap)
        assert cap.bytes_read <= size  # every byte visited once at most
        assert len(frames) <= size // 16 + 1
        assert (cap.truncated_at is None) == (cap.problem is None)
        if cap.truncated_at is not None:
            assert cap.truncated_at == len(frames) + 1
    try:
        evs = load_events(path)
    except UsageError as exc:
        assert exc.exit_code == EXIT_USAGE and "\n" not in exc.message
    else:
        assert len(evs) <= 12 * (size // 16 + 1) + 20


def _sound_gzip(data: bytes) -> bool:
    try:
        gzip.decompress(data)
    except (OSError, EOFError, ValueError, zlib.error):
        return False
    return True


def test_a_gzip_bomb_of_garbage_is_read_in_bounded_work(tmp_path: Path) -> None:
    """64 MB of zeros, compressed to 64 kB, after a pcap header: one impossible record, nothing allocated."""
    head = pcap_bytes([], 1)
    path = tmp_path / "bomb.pcap.gz"
    path.write_bytes(gzip.compress(head + b"\xff" * (64 << 20), compresslevel=9))
    cap = open_capture(path)
    assert list(cap) == [] and cap.truncated_at == 1 and cap.bytes_read <= 24 + 2 * (1 << 18)  # two chunks read
    with pytest.raises(UsageError, match="breaks off at frame 1"):
        load_events(path)
