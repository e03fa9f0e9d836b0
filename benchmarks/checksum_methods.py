"""Measure five pure-Python Internet checksum (RFC 1071) methods on 1514-byte frames.

    python benchmarks/checksum_methods.py [--frames N] [--repeat R]

1. int.from_bytes, four folds, then % 0xffff (the shipped method: rawtui.wire.checksum.internet_checksum;
   each fold adds the integer's upper part to its lower k bits, k a multiple of 16)
2. int.from_bytes % 0xffff       (the plain modulo: a hardware division per 30-bit digit)
2b. int.from_bytes, halving fold (add the big integer's upper and lower halves until 16 bits are left)
3. array("H") + sum              (native-endian words; the ones'-complement sum is byte-order independent)
4. memoryview.cast("H") + sum    (the same, without copying into an array)

Every method is first checked against rawtui.wire.checksum.reference_checksum.
"""

from __future__ import annotations

import argparse
import os
import sys
import timeit
from array import array
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rawtui.wire.checksum import internet_checksum, reference_checksum

FRAME_LEN = 1514
_BIG = sys.byteorder == "big"


def by_folds_then_modulo(data: bytes) -> int:
    return internet_checksum(data)


def by_modulo(data: bytes) -> int:
    r = int.from_bytes(data, "big")
    if len(data) & 1:
        r <<= 8
    r %= 0xFFFF
    if r == 0 and not any(data):
        return 0xFFFF
    return 0xFFFF - r if r else 0


def by_halving_fold(data: bytes) -> int:
    n = int.from_bytes(data, "big")
    if len(data) & 1:
        n <<= 8
    bits = (len(data) + 1) // 2 * 16
    while bits > 32:
        k = (bits // 2 + 15) // 16 * 16  # split at a word boundary near the middle
        n = (n >> k) + (n & ((1 << k) - 1))
        bits = max(bits - k, k) + 1  # + the carry out of the addition
    while n >> 16:
        n = (n & 0xFFFF) + (n >> 16)
    return ~n & 0xFFFF  # end-around folding keeps a true ones'-complement sum: 0 only for all-zero data


def _finish_native(s: int) -> int:
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    if not _BIG:
        s = ((s & 0xFF) << 8) | (s >> 8)  # RFC 1071 2(B): swap the bytes of the sum
    return ~s & 0xFFFF


def by_array_sum(data: bytes) -> int:
    if len(data) & 1:
        data += b"\0"
    return _finish_native(sum(array("H", data)))


def by_memoryview_sum(data: bytes) -> int:
    if len(data) & 1:
        data += b"\0"
    return _finish_native(sum(memoryview(data).cast("H")))


METHODS = [
    ("int.from_bytes, 4 folds, % 0xffff (shipped)", by_folds_then_modulo),
    ("int.from_bytes % 0xffff", by_modulo),
    ("int.from_bytes + halving fold", by_halving_fold),
    ('array("H") + sum', by_array_sum),
    ('memoryview.cast("H") + sum', by_memoryview_sum),
]


def check() -> None:
    samples = [os.urandom(n) for n in (0, 1, 2, 3, 20, 21, 40, 1500, 1513, FRAME_LEN)]
    samples += [bytes(n) for n in (0, 2, 3, 60)] + [b"\xff" * n for n in (2, 3, 60)]
    for name, fn in METHODS:
        for data in samples:
            if fn(data) != reference_checksum(data):
                raise SystemExit(f"{name} disagrees with the reference on {data[:16].hex()}... ({len(data)} B)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=2000, help="distinct random frames per pass")
    ap.add_argument("--repeat", type=int, default=5, help="passes per method (best is reported)")
    args = ap.parse_args()
    check()
    frames = [os.urandom(FRAME_LEN) for _ in range(args.frames)]
    print(f"Python {sys.version.split()[0]}, {args.frames} frames of {FRAME_LEN} bytes, best of {args.repeat}")
    print(f"{'method':<44} {'us/frame':>9} {'MB/s':>8}")
    for name, fn in METHODS:
        best = min(timeit.repeat(lambda fn=fn: [fn(f) for f in frames], number=1, repeat=args.repeat))
        per = best / len(frames)
        print(f"{name:<44} {per * 1e6:>9.2f} {FRAME_LEN / per / 1e6:>8.1f}")


if __name__ == "__main__":
    main()
