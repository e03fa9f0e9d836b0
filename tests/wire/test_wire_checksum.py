"""The Internet checksum (RFC 1071): known vectors, edge cases, and the fast residue method against the
slow word-by-word reference. (Speed is measured by benchmarks/checksum_methods.py, not asserted here.)"""

from __future__ import annotations

import os
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rawtui.wire.checksum import (
    checksum_from_residue,
    internet_checksum,
    pseudo_header_residue,
    reference_checksum,
    residue,
    verify,
)

# Example counts keep the whole tests/wire/ run under 15 s; WIRE_HYPOTHESIS_SCALE=10 digs deeper.
SCALE = max(1, int(os.environ.get("WIRE_HYPOTHESIS_SCALE", "1")))
RFC1071_EXAMPLE = bytes.fromhex("0001f203f4f5f6f7")  # RFC 1071 section 3: sum ddf2, checksum 220d


def _word_sum(data: bytes) -> int:
    """The folded 16-bit ones'-complement sum, written out longhand."""
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return s


# -- known vectors -----------------------------------------------------------------------------------


def test_rfc1071_example_sum_and_checksum() -> None:
    assert _word_sum(RFC1071_EXAMPLE) == 0xDDF2
    assert residue(RFC1071_EXAMPLE) == 0xDDF2
    assert internet_checksum(RFC1071_EXAMPLE) == 0x220D
    assert reference_checksum(RFC1071_EXAMPLE) == 0x220D


def test_rfc1071_example_verifies_with_checksum_appended() -> None:
    assert verify(RFC1071_EXAMPLE + b"\x22\x0d")
    assert not verify(RFC1071_EXAMPLE + b"\x22\x0c")
    assert not verify(RFC1071_EXAMPLE)


def test_rfc1071_byte_order_independence() -> None:
    """RFC 1071 2(B): swapping the bytes of every word swaps the bytes of the sum."""
    swapped = bytes(b for i in range(0, 8, 2) for b in (RFC1071_EXAMPLE[i + 1], RFC1071_EXAMPLE[i]))
    assert internet_checksum(swapped) == 0x0D22


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x01", 0xFEFF),  # one byte is padded on the right: word 0x0100
        (b"\x00\x01\xf2", 0x0DFE),  # 0x0001 + 0xf200 = 0xf201
        (b"\xff", 0x00FF),
        (b"\x12\x34\x56", 0x97CB),  # 0x1234 + 0x5600 = 0x6834
        (RFC1071_EXAMPLE + b"\x80", 0xA20C),  # 0xddf2 + 0x8000 = 0x15df2 -> 0x5df3
    ],
)
def test_odd_lengths(data: bytes, expected: int) -> None:
    assert internet_checksum(data) == expected
    assert reference_checksum(data) == expected
    assert residue(data) == residue(data + b"\0")


@pytest.mark.parametrize("n", [0, 1, 2, 3, 20, 1500, 1501])
def test_all_zero(n: int) -> None:
    """An all-zero buffer sums to +0, so RFC 1071 gives 0xffff, and it never verifies."""
    zeros = bytes(n)
    assert reference_checksum(zeros) == 0xFFFF
    assert internet_checksum(zeros) == 0xFFFF
    assert not verify(zeros)
    assert verify(zeros + b"\xff\xff")  # the computed checksum inserted


@pytest.mark.parametrize("n", [2, 4, 20, 1500])
def test_all_ones_even(n: int) -> None:
    """0xffff words sum to -0 (0xffff): checksum 0, and the buffer verifies."""
    ones = b"\xff" * n
    assert residue(ones) == 0
    assert internet_checksum(ones) == 0 == reference_checksum(ones)
    assert verify(ones)


@pytest.mark.parametrize("n", [1, 3, 21, 1501])
def test_all_ones_odd(n: int) -> None:
    ones = b"\xff" * n  # ...ffff ff00: sum 0xff00, checksum 0x00ff
    assert internet_checksum(ones) == 0x00FF == reference_checksum(ones)
    assert not verify(ones)


def test_checksum_from_residue() -> None:
    assert checksum_from_residue(0) == 0
    assert checksum_from_residue(1) == 0xFFFE
    assert checksum_from_residue(0xFFFE) == 1
    assert checksum_from_residue(0xFFFF) == 0  # -0 is 0
    assert checksum_from_residue(0xFFFF + 5) == 0xFFFA  # reduced first


def test_initial_is_added() -> None:
    a, b = RFC1071_EXAMPLE[:4], RFC1071_EXAMPLE[4:]
    assert internet_checksum(b, residue(a)) == 0x220D
    assert verify(b + b"\x22\x0d", residue(a))
    # A non-zero prefix whose sum is -0 is passed as 0xffff (residue 0 alone would read as "nothing").
    assert internet_checksum(b"\0\0", 0xFFFF) == 0 == reference_checksum(b"\xff\xff\0\0")
    assert verify(b"\0\0", 0xFFFF)


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_buffer_types(kind: type) -> None:
    assert internet_checksum(kind(RFC1071_EXAMPLE)) == 0x220D
    assert residue(kind(RFC1071_EXAMPLE + b"\x80")) == residue(RFC1071_EXAMPLE + b"\x80")
    assert verify(kind(RFC1071_EXAMPLE + b"\x22\x0d"))
    assert internet_checksum(kind(bytes(6))) == 0xFFFF
    assert not verify(kind(bytes(6)))


# -- the fast residue method against the reference --------------------------------------------------


@settings(max_examples=300 * SCALE, deadline=None)
@given(st.binary(max_size=1600))
def test_agrees_with_reference(data: bytes) -> None:
    assert internet_checksum(data) == reference_checksum(data)


def test_agrees_with_reference_on_zeros() -> None:
    for n in range(65):
        assert internet_checksum(bytes(n)) == reference_checksum(bytes(n)) == 0xFFFF


@settings(max_examples=150 * SCALE, deadline=None)
@given(st.lists(st.sampled_from([0x0000, 0xFFFF, 0x0001, 0xFFFE, 0x8000]), max_size=40))
def test_agrees_with_reference_on_carry_heavy_words(words: list[int]) -> None:
    data = struct.pack(f"!{len(words)}H", *words)
    assert internet_checksum(data) == reference_checksum(data)
    assert residue(data) == _word_sum(data) % 0xFFFF


@settings(max_examples=150 * SCALE, deadline=None)
@given(st.binary(max_size=300), st.binary(max_size=300))
def test_residues_add(a: bytes, b: bytes) -> None:
    if len(a) % 2:
        a += b"\0"
    assert residue(a + b) == (residue(a) + residue(b)) % 0xFFFF
    if any(b) or not any(a):
        assert internet_checksum(b, residue(a)) == internet_checksum(a + b)


@settings(max_examples=250 * SCALE, deadline=None)
@given(st.binary(min_size=2, max_size=600), st.data())
def test_verify_after_inserting_checksum(data: bytes, draw: st.DataObject) -> None:
    if len(data) % 2:
        data += b"\x5a"
    off = draw.draw(st.integers(0, len(data) // 2 - 1)) * 2
    zeroed = data[:off] + b"\0\0" + data[off + 2 :]
    csum = internet_checksum(zeroed)
    assert csum == reference_checksum(zeroed)
    filled = zeroed[:off] + csum.to_bytes(2, "big") + zeroed[off + 2 :]
    assert verify(filled)
    assert reference_checksum(filled) == 0
    # Any single-bit error is caught.
    bit = draw.draw(st.integers(0, len(filled) * 8 - 1))
    flipped = bytearray(filled)
    flipped[bit // 8] ^= 0x80 >> (bit % 8)
    assert not verify(flipped)


# -- the pseudo-header --------------------------------------------------------------------------------


def _pseudo_header(src: bytes, dst: bytes, proto: int, length: int) -> bytes:
    """RFC 9293 section 3.1: src, dst, zero, PTCL, TCP length (12 bytes)."""
    return src + dst + struct.pack("!BBH", 0, proto, length)


def test_pseudo_header_residue_known() -> None:
    src, dst = bytes([192, 0, 2, 1]), bytes([198, 51, 100, 7])
    # 0xc000 + 0x0201 + 0xc633 + 0x6407 + 0x0006 + 0x0028 = 0x1ec69 -> 0xec6a
    assert pseudo_header_residue(src, dst, 6, 40) == 0xEC6A
    assert residue(_pseudo_header(src, dst, 6, 40)) == 0xEC6A


@settings(max_examples=150 * SCALE, deadline=None)
@given(
    st.binary(min_size=4, max_size=4),
    st.binary(min_size=4, max_size=4),
    st.integers(0, 255),
    st.integers(0, 0xFFFF),
)
def test_pseudo_header_residue_matches_manual(src: bytes, dst: bytes, proto: int, length: int) -> None:
    manual = _pseudo_header(src, dst, proto, length)
    assert pseudo_header_residue(src, dst, proto, length) == residue(manual)
    assert pseudo_header_residue(src, dst, proto, length) == _word_sum(manual) % 0xFFFF


@settings(max_examples=150 * SCALE, deadline=None)
@given(st.binary(min_size=4, max_size=4), st.binary(min_size=4, max_size=4), st.binary(max_size=300))
def test_pseudo_header_plus_segment_matches_reference(src: bytes, dst: bytes, segment: bytes) -> None:
    segment = b"\x50" + segment  # a non-zero first byte, like a TCP port/offset
    ph = pseudo_header_residue(src, dst, 6, len(segment))
    assert internet_checksum(segment, ph) == reference_checksum(_pseudo_header(src, dst, 6, len(segment)) + segment)


def test_a_field_of_0xffff_where_0_is_computed_verifies() -> None:
    """A segment whose words sum to 0xffff has the checksum 0x0000; Linux writes 0xffff instead when it
    checksums in software (skb_checksum_help's CSUM_MANGLED_0), one segment in 65,535. Both are ones'-
    complement zero and the sum verifies (RFC 1071): Linux's receivers take it, and so does rawtui (tshark
    flags it, "see RFC 1624": tests/lab/test_lab_tshark_agreement.py keeps such frames)."""
    src, dst = bytes([10, 77, 2, 2]), bytes([10, 77, 1, 2])
    body = bytearray(os.urandom(40))
    body[16:18] = b"\0\0"  # the checksum field
    ph = pseudo_header_residue(src, dst, 6, len(body))
    short = (0xFFFF - (ph + residue(body)) % 0xFFFF) % 0xFFFF  # what the last word must add for a sum of 0xffff
    body[38:40] = (((body[38] << 8 | body[39]) + short) % 0xFFFF).to_bytes(2, "big")
    assert internet_checksum(body, ph) == 0x0000
    for field in (b"\0\0", b"\xff\xff"):
        body[16:18] = field
        assert verify(body, ph)
    body[16:18] = b"\x00\x01"
    assert not verify(body, ph)
