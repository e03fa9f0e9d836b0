"""The Internet checksum (RFC 1071): a 16-bit ones'-complement sum, computed fast in pure Python.

The trick: read the whole buffer as one big-endian integer. Because 2**16 = 1 (mod 0xffff), that integer
is congruent modulo 0xffff to the sum of its 16-bit words, which is what the ones'-complement sum folds.
``int.from_bytes`` and ``%`` run in C, so this is several times faster than summing words
(measured by ``benchmarks/checksum_methods.py`` against the alternatives).

All functions here work on *residues* (``n % 0xffff``), which add like numbers; a residue of 0 for a
non-zero buffer stands for the ones'-complement value 0xffff ("negative zero"). Only an all-zero buffer
(with ``initial`` 0) sums to positive zero: its checksum is 0xffff and it never verifies.
"""

from __future__ import annotations

_M = 0xFFFF
# Folds applied before the modulo. A long division by 0xffff costs a hardware division per 30-bit digit
# (~11 ns each: ~4.5 us for a 1480-byte segment); adding a number's upper part (shifted down by k bits,
# k a multiple of 16, so 2**k = 1 mod 0xffff) to its lower k bits keeps the residue and costs only a
# shift, a mask and an add. Four halvings take an MTU-sized segment from 11840 to ~740 bits: the whole
# residue then costs ~2/3 of the plain modulo (benchmarks/checksum_methods.py measures both).
_M1, _M2, _M3, _M4 = ((1 << k) - 1 for k in (5888, 2944, 1472, 736))


def residue(data: bytes | bytearray | memoryview) -> int:
    """The buffer's 16-bit ones'-complement sum as a residue modulo 0xffff (odd lengths zero-padded)."""
    n = int.from_bytes(data, "big")
    bits = len(data) << 3
    if bits & 8:
        n <<= 8
        bits += 8
    if bits > 2944:  # below ~370 bytes the plain modulo is cheaper than the folds
        if bits > 5888:
            while bits > 12288:  # more than 1536 bytes (a GRO/TSO super-frame): halve it first
                k = (bits >> 5) << 4  # about half, a multiple of 16
                n = (n >> k) + (n & ((1 << k) - 1))
                bits -= k - 1
            n = (n >> 5888) + (n & _M1)
        n = (n >> 2944) + (n & _M2)
        n = (n >> 1472) + (n & _M3)
        n = (n >> 736) + (n & _M4)
    return n % _M


def checksum_from_residue(r: int) -> int:
    """The checksum field value that makes the whole sum come out as 0xffff."""
    r %= _M
    return _M - r if r else 0


def internet_checksum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """The value to put in a checksum field computed over ``data`` (field zeroed) plus ``initial``."""
    r = residue(data) + initial
    if r == 0 and not any(data):  # the sum is +0 (all words zero), not -0 = 0xffff: RFC 1071 gives 0xffff
        return _M
    return checksum_from_residue(r)


def verify(data: bytes | bytearray | memoryview, initial: int = 0) -> bool:
    """True when ``data`` (checksum field included) plus ``initial`` sums to 0xffff."""
    if (residue(data) + initial) % _M:
        return False
    return initial != 0 or any(data)  # an all-zero buffer sums to +0, not 0xffff


def pseudo_header_residue(src: bytes, dst: bytes, proto: int, length: int) -> int:
    """The pseudo-header's contribution to a TCP/UDP/ICMPv6 checksum, for either family: IPv4's (4-byte
    addresses, 16-bit length, RFC 9293 3.1) and IPv6's (16-byte addresses, 32-bit upper-layer length,
    RFC 8200 8.1) sum to the same residue, since an address read as one integer is congruent to the sum
    of its 16-bit words and a 32-bit length to the sum of its two halves (mod 0xffff)."""
    return (int.from_bytes(src, "big") + int.from_bytes(dst, "big") + proto + length) % _M


def reference_checksum(data: bytes) -> int:
    """A slow, obviously-correct RFC 1071 checksum (word sum with end-around carry), for tests."""
    if len(data) & 1:
        data = data + b"\0"
    s = 0
    for i in range(0, len(data), 2):
        s += (data[i] << 8) | data[i + 1]
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF
